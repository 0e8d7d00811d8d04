"""Inbound file-name grammars: data files (§3.2), ODC data files (§3.2.1), ID-sync files (§2.3.1).

``parse_file_name`` turns a drop-zone object's base name into a ``DataFileName`` or a
``SyncFileName`` or raises ``InvalidFileName`` saying which part is wrong and how to write it.
Names are case-sensitive and all literals lower-case. The parse is purely syntactic: whether a
DPID exists, is global, needs a target (``ftp_dpm_20914_…`` without target) or may be used by
the uploader is decided by the authorization check of §3.2.2, not here. The name is read left to
right as prefix, ``_``-separated numeric groups up to the first ``.``, then the ``.``-separated
tail (mode, optional split number, optional suffix); the grammar for each prefix is one row of
``_GRAMMARS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NoReturn, cast

from onramp.errors import InvalidFileName

Mode = Literal["sync", "overwrite"]
Suffix = Literal["gz", "pgp", "gpg"]
SyncPrefix = Literal["adobe_id_", "c2c_id_"]

MAX_DPID = 2**31 - 1  # D-01: DPIDs are positive 32-bit integers
MAX_SPLIT = 2**31 - 1  # split numbers are stored as 32-bit integers too
TIMESTAMP_DIGITS = 10

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() would accept '²' or '٣'
_PGP = frozenset({"pgp", "gpg"})
_UNSUPPORTED = frozenset({"zip", "bz2", "xz", "7z", "tar", "tgz", "zst", "lz4", "z", "txt", "csv", "tsv"})


@dataclass(frozen=True)
class _Grammar:
    """One inbound name grammar (a row of ``_GRAMMARS``)."""

    prefix: str
    kind: Literal["data", "sync"]
    odc: bool
    modes: frozenset[str]
    suffixes: frozenset[str]
    min_dpids: int
    max_dpids: int | None  # None: no upper bound
    zero_dpid: bool  # DPID 0 (platform UUIDs) allowed
    layout: str  # for hints


_GRAMMARS: tuple[_Grammar, ...] = (
    # ftp_dpm_odc_ must come before ftp_dpm_, which is its prefix.
    _Grammar("ftp_dpm_odc_", "data", True, frozenset({"sync", "overwrite"}), frozenset({"gz"}), 1, 2, False,
             "ftp_dpm_odc_<DPID>[_<target>]_<10-digit timestamp>.sync|.overwrite[.<split>][.gz]"),
    _Grammar("ftp_dpm_", "data", False, frozenset({"sync", "overwrite"}), frozenset({"gz", "pgp", "gpg"}), 1, 2, False,
             "ftp_dpm_<DPID>[_<target>]_<10-digit timestamp>.sync|.overwrite[.<split>][.gz|.pgp|.gpg]"),
    # D-14: sync files take the PGP suffixes of §3.3.2 too.
    _Grammar("adobe_id_", "sync", False, frozenset({"sync"}), frozenset({"gz", "pgp", "gpg"}), 2, None, True,
             "adobe_id_<master DPID>_<DPID>[_<DPID>...]_<10-digit timestamp>.sync[.<split>][.gz|.pgp|.gpg]"),
    # §2.3.1 defines c2c_id_ as exactly <DPUUID source>_<hashed-email source>; neither can be DPID 0.
    _Grammar("c2c_id_", "sync", False, frozenset({"sync"}), frozenset({"gz", "pgp", "gpg"}), 2, 2, False,
             "c2c_id_<customer DPID>_<hashed-email DPID>_<10-digit timestamp>.sync[.<split>][.gz|.pgp|.gpg]"),
)

_ALL_LAYOUTS = "; ".join(g.layout for g in _GRAMMARS)


@dataclass(frozen=True)
class DataFileName:
    """A parsed inbound data-file name (``ftp_dpm_…`` or ``ftp_dpm_odc_…``)."""

    name: str
    odc: bool
    dpid: int  # namespace of column 1 (ODC: the trait owner; the namespace comes from each line)
    target: int | None
    timestamp: int
    mode: Mode
    split: int | None
    suffix: Suffix | None

    @property
    def owner_dpid(self) -> int:
        """The data source whose traits the file touches (§3.2.2)."""
        return self.target if self.target is not None else self.dpid

    @property
    def base_name(self) -> str:
        """The logical file: the name without split number and suffix (all parts share it)."""
        return _base_name(self.name, self.mode)


@dataclass(frozen=True)
class SyncFileName:
    """A parsed ID-sync file name (``adobe_id_…`` or ``c2c_id_…``); ``dpids[0]`` is the master."""

    name: str
    prefix: SyncPrefix
    dpids: tuple[int, ...]
    timestamp: int
    split: int | None
    suffix: Suffix | None

    @property
    def base_name(self) -> str:
        """The logical file: the name without split number and suffix."""
        return _base_name(self.name, "sync")


def _base_name(name: str, mode: str) -> str:
    # The numeric groups contain no '.', so the first '.' starts the mode.
    return f"{name[: name.index('.')]}.{mode}"


def parse_file_name(name: str, *, accept_short_timestamp: bool = False) -> DataFileName | SyncFileName:
    """Parse an inbound file's base name (§2.3.1, §3.2, §3.2.1); raise ``InvalidFileName``.

    ``accept_short_timestamp`` is the D-20 tolerance flag: 1–9 digit timestamps pass too.
    """
    if "/" in name:
        _fail(name, "file name contains '/'", "pass the base name of the object key, without folders")
    grammar = next((g for g in _GRAMMARS if name.startswith(g.prefix)), None)
    if grammar is None:
        _fail(name, "unknown file name", _unknown_hint(name))
    head, dot, tail = name[len(grammar.prefix):].partition(".")
    numbers = _parse_groups(name, grammar, head, accept_short_timestamp)
    if not dot:
        _fail(name, "no mode after the timestamp", f"end the name with {_modes(grammar)}; layout: {grammar.layout}")
    mode, split, suffix = _parse_tail(name, grammar, tail)
    *dpids, timestamp = numbers
    if grammar.kind == "sync":
        return SyncFileName(name, cast(SyncPrefix, grammar.prefix), tuple(dpids), timestamp, split, suffix)
    return DataFileName(name, grammar.odc, dpids[0], dpids[1] if len(dpids) == 2 else None,
                        timestamp, cast(Mode, mode), split, suffix)


def _parse_groups(name: str, grammar: _Grammar, head: str, short_ok: bool) -> list[int]:
    """The ``_``-separated numbers between prefix and first ``.``: DPIDs, then the timestamp."""
    groups = head.split("_")
    for i, group in enumerate(groups):
        label = "timestamp" if i == len(groups) - 1 else _dpid_label(grammar, i)
        if not group:
            _fail(name, f"empty {label} (two '_' in a row, or '_' next to '.')", f"layout: {grammar.layout}")
        if not _DIGITS.fullmatch(group):
            _fail(name, f"{label} {_q(group)} is not a number", f"use ASCII digits only; layout: {grammar.layout}")
    n_dpids = len(groups) - 1
    if grammar.max_dpids is not None and n_dpids > grammar.max_dpids:
        reason = ("more than two numeric groups before the timestamp" if grammar.kind == "data"
                  else f"{grammar.prefix} files link exactly two DPIDs, found {n_dpids}")
        _fail(name, reason, f"layout: {grammar.layout}")
    if n_dpids < grammar.min_dpids:
        reason = ("missing DPID or timestamp" if grammar.kind == "data"
                  else f"ID-sync file names need at least two DPIDs (master + one), found {n_dpids}")
        _fail(name, reason, f"layout: {grammar.layout}")
    for i, group in enumerate(groups[:-1]):
        _check_dpid(name, grammar, _dpid_label(grammar, i), group)
    stamp = groups[-1]
    if len(stamp) > TIMESTAMP_DIGITS or (len(stamp) < TIMESTAMP_DIGITS and not short_ok):
        _fail(name, f"timestamp must be {TIMESTAMP_DIGITS} digits, got {len(stamp)} ({_q(stamp)})",
              "use the Unix time in seconds (UTC), e.g. 1700000000")
    return [int(g) for g in groups]


def _dpid_label(grammar: _Grammar, i: int) -> str:
    if grammar.kind == "data":
        return ("DPID", "target DPID")[i] if i < 2 else f"group #{i + 1}"
    return "master DPID" if i == 0 else f"DPID #{i + 1}"


def _check_dpid(name: str, grammar: _Grammar, label: str, group: str) -> None:
    if group == "0":
        if not grammar.zero_dpid:
            _fail(name, f"{label} 0 is not allowed in {grammar.prefix} names",
                  "DPID 0 stands for platform UUIDs and appears only in adobe_id_ sync files")
        return
    if group.startswith("0"):
        _fail(name, f"{label} {_q(group)} has a leading zero", f"write it as {group.lstrip('0') or '0'}")
    if len(group) > len(str(MAX_DPID)) or int(group) > MAX_DPID:
        _fail(name, f"{label} {_q(group)} is larger than {MAX_DPID}", "DPIDs are positive 32-bit integers")


def _parse_tail(name: str, grammar: _Grammar, tail: str) -> tuple[str, int | None, Suffix | None]:
    """``mode [. split] [. suffix]``; everything after the first ``.`` of the name."""
    parts = tail.split(".")
    mode = parts[0]
    if mode not in grammar.modes:
        _fail(name, _mode_reason(grammar, mode), f"end the name with {_modes(grammar)}; layout: {grammar.layout}")
    rest = parts[1:]
    split = None
    if rest and _DIGITS.fullmatch(rest[0]):
        text = rest.pop(0)
        if len(text) > len(str(MAX_SPLIT)) or int(text) > MAX_SPLIT:
            _fail(name, f"split number {_q(text)} is larger than {MAX_SPLIT}", "number the parts 1, 2, 3, ...")
        split = int(text)
    suffix = rest.pop(0) if rest else None
    if suffix is not None:
        _check_suffix(name, grammar, suffix, rest)
    if rest:
        _fail(name, f"unexpected {_q('.' + rest[0])} after '.{suffix}'", f"layout: {grammar.layout}")
    return mode, split, cast(Suffix | None, suffix)


def _check_suffix(name: str, grammar: _Grammar, suffix: str, rest: list[str]) -> None:
    if {suffix, *rest[:1]} in ({"gz", "pgp"}, {"gz", "gpg"}):
        _fail(name, "gzip and PGP combined",
              "PGP already compresses: send either .gz or .pgp/.gpg, and do not gzip before encrypting")
    if suffix in grammar.suffixes:
        if rest and _DIGITS.fullmatch(rest[0]):
            _fail(name, f"split number after the suffix '.{suffix}'", f"put the split number first, e.g. .sync.{rest[0]}.{suffix}")
        return
    if suffix == "":
        _fail(name, "empty extension ('..' or a trailing '.')", f"layout: {grammar.layout}")
    if suffix in _PGP and grammar.odc:
        _fail(name, "ODC files cannot be PGP-encrypted", "ftp_dpm_odc_ names end in .sync/.overwrite, optionally .gz (§3.2.1)")
    if suffix.lower() in grammar.suffixes:
        _fail(name, f"suffix '.{suffix}' is not lower-case", f"file names are case-sensitive: write .{suffix.lower()}")
    what = "unsupported compression or format" if suffix.lower() in _UNSUPPORTED else "unknown suffix"
    _fail(name, f"{what} {_q('.' + suffix)}", f"allowed: no suffix or {', '.join('.' + s for s in sorted(grammar.suffixes))}")


def _mode_reason(grammar: _Grammar, mode: str) -> str:
    if mode == "overwrite" and grammar.kind == "sync":
        return ".overwrite is not defined for ID-sync files"
    if mode.lower() in grammar.modes:
        return f"mode {_q('.' + mode)} is not lower-case (file names are case-sensitive)"
    return f"expected {_modes(grammar)} after the timestamp, found {_q('.' + mode)}"


def _modes(grammar: _Grammar) -> str:
    return " or ".join(f".{m}" for m in sorted(grammar.modes, reverse=True))


def _unknown_hint(name: str) -> str:
    near = next((g.prefix for g in _GRAMMARS if name.lower().startswith(g.prefix)), None)
    if near is not None:
        return f"file names are case-sensitive: start the name with lower-case '{near}'"
    return f"use one of: {_ALL_LAYOUTS}"


def _q(text: str) -> str:
    """Quote a piece of the name for a message, shortened: names can be up to 1,024 bytes."""
    return repr(text if len(text) <= 24 else f"{text[:21]}...")


def _fail(name: str, reason: str, hint: str) -> NoReturn:
    raise InvalidFileName(reason, hint=hint, where=name)
