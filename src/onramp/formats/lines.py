"""The reference parser for inbound data lines (§3.4–§3.7, ODC §3.2.1) and ID-sync rows (§2.3.2).

The production engine classifies lines set-wise in SQL; this module is the oracle that SQL is
tested against and the source of the reason and fix hint shown for every Format Error. A data
line goes through the §3.7 stages in order: ``split_data_line`` (terminator, blank line, length,
UTF-8, control characters, TAB layout — the "structural parse" whose survivors count toward the
200-lines cap), then ``check_user_id`` (§3.5), then ``parse_items`` (§3.4); ``parse_data_line``
runs the first and last for callers that do not need the stages apart. The cap, profile
resolution and trait evaluation belong to the engine. Decisions beyond the spec's text:
directive values are unquoted before the digits check, so ``d_sid="24"`` adds trait 24 and
``d_sid=x`` is a malformed item; keys are lower-cased for ASCII letters only, so Python, DuckDB
and Spark agree byte for byte (rule keys are ASCII by §4.2, so nothing that could match is
lost); an unknown ODC ID type fails the structural parse; and in ID-sync rows every Format Error
outranks an Invalid AAM ID / Invalid Device ID, which are reported for the first failing column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from onramp.errors import OnrampError
from onramp.formats import ids
from onramp.formats.buckets import BUCKETS, Bucket

MAX_LINE_BYTES = 102_400  # §3.6, D-32: excluding the terminator
# §3.7: control characters other than TAB (a lone CR inside a line is one, D-16). RE2-compatible.
LINE_CONTROL_RE = r"[\x00-\x08\x0a-\x1f\x7f]"
# §2.3.2: an ID-sync field holds no SP, TAB or other control character.
SYNC_FIELD_FORBIDDEN_RE = r"[\x00-\x20\x7f]"
# D-21: accepted ODC ID types, matched case-insensitively.
ODC_ID_TYPES: dict[str, int] = {"idfa": 20915, "android device id": 20914, "android": 20914, "gaid": 20914, "aaid": 20914}

ItemKind = Literal["add", "remove", "signal"]
Namespace = int | Literal["platform_uuid", "customer"]

_LINE_CONTROL = re.compile(LINE_CONTROL_RE)
_DIGITS = re.compile(r"[0-9]+")
_COLON_REMOVE = re.compile(r"([0-9]+):(0|-1)")
_COLON_OTHER = re.compile(r"([0-9]+):.*", re.DOTALL)
_PRIVATE_KEY = re.compile(r'"? *-*[pP]_')  # §4.2: p_ values never reach logs or reject files
_SYNC_FIELD_FORBIDDEN = re.compile(SYNC_FIELD_FORBIDDEN_RE)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_DIRECTIVES: dict[str, ItemKind] = {"d_sid": "add", "d_unsid": "remove"}
_EXCERPT_CHARS = 60

_LAYOUT_HINT = BUCKETS[Bucket.FORMAT_ERROR].hint
_ODC_LAYOUT_HINT = "ODC lines are <ID type><TAB><user ID><TAB><item>,<item>,... (SPEC §3.2.1)"
_ODC_TYPES_HINT = "use idfa, android device id, android, gaid or aaid (any case)"


@dataclass(frozen=True)
class Item:
    """One non-empty item of a data line.

    ``position`` counts non-empty items from 0. ``key`` is None for directives; for signals it
    is unquoted, stripped of leading '-' and lower-cased ("ic" for bare numbers). ``value`` is the
    trait ID for directives and the signal value otherwise; ``text`` is the item as written.
    """

    position: int
    kind: ItemKind
    key: str | None
    value: str
    text: str


@dataclass(frozen=True)
class SplitLine:
    """A line that passed the structural parse (§3.7): its columns, items not yet parsed."""

    id_type: str | None  # ODC only, lower-cased
    user_id: str
    item_text: str


@dataclass(frozen=True)
class ParsedLine:
    """A structurally valid data line with its non-empty items (the user ID is not yet checked)."""

    id_type: str | None  # ODC only, lower-cased
    user_id: str
    items: tuple[Item, ...]


class LineError(OnrampError):
    """Why a line or row lands in a failure bucket; ``reason`` is the message.

    ``item_position`` is the 0-based position of the offending item (the message says
    ``item <position + 1>``), None when the problem is not one item.
    """

    def __init__(self, bucket: Bucket, reason: str, hint: str, item_position: int | None = None):
        super().__init__(reason, hint=hint)
        self.bucket = bucket
        self.reason = reason
        self.item_position = item_position


def ascii_lower(text: str) -> str:
    """Lower-case A–Z only: Unicode lower-casing differs between Python ('İ' → 'i̇') and DuckDB."""
    return text.translate(_ASCII_LOWER)


def normalize_key(key: str) -> str:
    """A signal key as matched against rules: unquoted already, leading '-' dropped, lower-cased."""
    return ascii_lower(key.lstrip("-"))


def odc_namespace(id_type: str) -> int | None:
    """The global device DPID of an ODC ID type (D-21), None when the type is unknown."""
    return ODC_ID_TYPES.get(ascii_lower(id_type))


# --- Data lines: structure ---------------------------------------------------------------------


def split_data_line(raw: bytes, *, odc: bool = False, max_line_bytes: int = MAX_LINE_BYTES) -> SplitLine | None:
    """The structural stage of §3.7: None for a blank line, else the columns; raises ``LineError``.

    ``raw`` is one line without its LF. One trailing CR is dropped; empty or all-space lines are
    blank (D-16). Trailing spaces are trimmed (D-25); a trailing TAB stays and fails the layout.
    """
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    if not raw.strip(b" "):
        return None
    text = _decode(raw, max_line_bytes, "line").rstrip(" ")
    user_id, tab, rest = text.partition("\t")
    if not tab:
        raise _format_error("no TAB between the user ID and the items", _ODC_LAYOUT_HINT if odc else _LAYOUT_HINT)
    id_type = None
    if odc:
        id_type = ascii_lower(user_id)
        user_id, tab, rest = rest.partition("\t")
        if not tab:
            raise _format_error("ODC line has no second TAB", _ODC_LAYOUT_HINT)
    if not user_id:
        raise _format_error("empty user ID", "put the user ID before the TAB")
    if "\t" in rest:
        raise _format_error(
            f"another TAB at character {len(text) - len(rest) + rest.index(chr(9)) + 1}",
            "use exactly one TAB (ODC: two) per line; a TAB is not an empty value — drop the item or give it a value",
        )
    if id_type is not None and id_type not in ODC_ID_TYPES:
        raise _format_error(f"unknown ODC ID type {_excerpt(id_type)}" if id_type else "empty ODC ID type", _ODC_TYPES_HINT)
    return SplitLine(id_type, user_id, rest)


def _decode(raw: bytes, max_line_bytes: int, noun: str) -> str:
    """Length, UTF-8 and control-character checks shared by data lines and sync rows."""
    if len(raw) > max_line_bytes:
        raise _format_error(
            f"{noun} is {len(raw):,} bytes, over the {max_line_bytes:,}-byte limit",
            "split the items over several lines of the same user ID" if noun == "line" else "shorten the IDs",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _format_error(f"invalid UTF-8 at byte {exc.start + 1}", "save the file as UTF-8 (ASCII is fine too)") from None
    control = _LINE_CONTROL.search(text)
    if control is not None:
        raise _format_error(
            f"control character U+{ord(control.group()):04X} at character {control.start() + 1}",
            "remove control characters: only TAB separates columns, and lines end with LF or CRLF",
        )
    return text


# --- Data lines: items -------------------------------------------------------------------------


def parse_items(item_text: str) -> tuple[Item, ...]:
    """Parse the item list (§3.4). Empty items are skipped (D-26); any malformed item or no
    non-empty item at all makes the line a Format Error (D-31)."""
    items: list[Item] = []
    for piece in _split_items(item_text):
        text = piece.strip(" ")
        if text:
            items.append(_parse_item(len(items), text))
    if not items:
        reason = "only empty items" if item_text.strip(" ") else "no items after the TAB"
        raise _format_error(reason, "list at least one item, e.g. d_sid=123 or key=value")
    return tuple(items)


def parse_data_line(raw: bytes, *, odc: bool = False, max_line_bytes: int = MAX_LINE_BYTES) -> ParsedLine | None:
    """Structure and items of one data line; None when blank. The user ID is not validated
    here (``check_user_id``) and the 200-lines cap is the engine's."""
    split = split_data_line(raw, odc=odc, max_line_bytes=max_line_bytes)
    if split is None:
        return None
    return ParsedLine(split.id_type, split.user_id, parse_items(split.item_text))


def _split_items(text: str) -> list[str]:
    """Split on commas outside double quotes; an unclosed quote runs to the end of the line."""
    pieces, start, quoted = [], 0, False
    for i, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return pieces


class _Malformed(Exception):
    """Internal: an item does not match §3.4; turned into a ``LineError`` with the item's place."""

    def __init__(self, reason: str, hint: str):
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _parse_item(position: int, text: str) -> Item:
    try:
        kind, key, value = _parse_element(text)
    except _Malformed as exc:
        where = f"item {position + 1} {_excerpt(text, mask_private=True)}"
        raise LineError(Bucket.FORMAT_ERROR, f"{where}: {exc.reason}", exc.hint, position) from None
    return Item(position, kind, key, value, text)


def _parse_element(text: str) -> tuple[ItemKind, str | None, str]:
    """``operand [ "=" operand ]`` with spaces allowed around '='; see the §3.4 grammar."""
    key, key_quoted, i = _operand(text, 0)
    i = _skip_spaces(text, i)
    if i == len(text):
        return _bare_element(key, key_quoted)
    if text[i] != "=":
        raise _Malformed("text after the closing quote", 'put "=" between key and value: "key"="value"')
    value, value_quoted, i = _operand(text, i + 1)
    i = _skip_spaces(text, i)
    if i < len(text):
        if text[i] == "=":
            raise _Malformed("more than one '='", 'quote a value that contains "=": key="a=b"')
        raise _Malformed("text after the closing quote", "one key=value pair per item; separate items with ','")
    key = key.lstrip("-")
    if not key:
        raise _Malformed("missing key", "write key=value")
    if not value:
        raise _Malformed("empty value", "give the key a value or drop the item (D-28)")
    kind = _DIRECTIVES.get(ascii_lower(key))
    if kind is None:
        return "signal", ascii_lower(key), value
    if not _DIGITS.fullmatch(value):
        raise _Malformed("trait ID must be digits", f"write {ascii_lower(key)}=123")
    return kind, None, value


def _operand(text: str, i: int) -> tuple[str, bool, int]:
    """A quoted or unquoted token starting at ``text[i]`` (after spaces): (token, quoted, end)."""
    i = _skip_spaces(text, i)
    if text.startswith('"', i):
        end = text.find('"', i + 1)
        if end < 0:
            raise _Malformed("unbalanced quote", 'close the quote: "key"="value"')
        return text[i + 1 : end], True, end + 1
    end = i
    while end < len(text) and text[end] not in '="':
        end += 1
    if end < len(text) and text[end] == '"' and text[i:end].strip(" "):
        raise _Malformed("quote inside an unquoted key or value", 'quote the whole key or value: "key"="value"')
    return text[i:end].strip(" "), False, end


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] == " ":
        i += 1
    return i


def _bare_element(token: str, quoted: bool) -> tuple[ItemKind, str | None, str]:
    """An item without '=': a bare number (``ic`` signal, D-30) or a ``N:0`` / ``N:-1`` removal."""
    if quoted:
        raise _Malformed("quoted token without '='", 'a quoted string must be a key or a value: "key"="value"')
    if _DIGITS.fullmatch(token):
        return "signal", "ic", token
    removal = _COLON_REMOVE.fullmatch(token)
    if removal is not None:
        return "remove", None, removal.group(1)
    other = _COLON_OTHER.fullmatch(token)
    if other is not None:
        n = other.group(1)
        raise _Malformed(f"{n}:<x> removes a trait only as {n}:0 or {n}:-1", f"write {n}:0 or d_unsid={n}")
    raise _Malformed("bare word without '='", "write key=value; bare items must be numbers (ic values)")


# --- User IDs ------------------------------------------------------------------------------------


def check_user_id(
    user_id: str, *, namespace: Namespace, reject_email_like: bool = True
) -> LineError | None:
    """Validate a user ID against its namespace (§3.5); None when valid.

    ``namespace`` is a global device DPID (→ Invalid Device ID), "platform_uuid" (→ Invalid
    AAM ID) or "customer" (DPUUID rules of §1.4 → Format Error).
    """
    return _check_id(user_id, namespace, "user ID", reject_email_like)


def _check_id(value: str, namespace: Namespace, label: str, reject_email_like: bool) -> LineError | None:
    if isinstance(namespace, str) and namespace in _NAMED_CHECKS:
        return _NAMED_CHECKS[namespace](value, label, reject_email_like)
    if not isinstance(namespace, int) or not ids.is_global_device_dpid(namespace):
        raise ValueError(f"namespace {namespace!r} is not a global device DPID, 'platform_uuid' or 'customer'")
    if ids.check_device_id(namespace, value):
        return None
    source = ids.GLOBAL_DEVICE_SOURCES[namespace]
    if value == ids.ZERO_GUID:
        return LineError(Bucket.INVALID_DEVICE_ID, f"{label} is the all-zero device ID (limited ad tracking)",
                         "leave out devices with limited ad tracking: their ID is not usable (D-08)")
    example = f", e.g. {source.example}" if source.example else ""
    return LineError(Bucket.INVALID_DEVICE_ID, f"{label} {_excerpt(value)} is not a valid {source.name}",
                     f"expected: {source.kind}{example}; raw, in the exact case the OS exposes")


def _check_platform_uuid(value: str, label: str, _reject_email_like: bool) -> LineError | None:
    if ids.check_platform_uuid(value):
        return None
    return LineError(Bucket.INVALID_AAM_ID, f"{label} {_excerpt(value)} is not a platform UUID",
                     BUCKETS[Bucket.INVALID_AAM_ID].hint)


def _check_customer_id(value: str, label: str, reject_email_like: bool) -> LineError | None:
    reason = ids.check_dpuuid(value, reject_email_like=reject_email_like)
    if reason is None:
        return None
    return LineError(Bucket.FORMAT_ERROR, f"{label} {_excerpt(value)} {reason}", ids.DPUUID_HINTS[reason])


_NAMED_CHECKS: dict[str, Callable[[str, str, bool], LineError | None]] = {
    "platform_uuid": _check_platform_uuid,
    "customer": _check_customer_id,
}


# --- ID-sync rows --------------------------------------------------------------------------------


def parse_sync_row(
    raw: bytes,
    dpids: tuple[int, ...],
    *,
    c2c: bool,
    max_line_bytes: int = MAX_LINE_BYTES,
    reject_email_like: bool = True,
) -> tuple[str, ...] | None:
    """The fields of one ID-sync row (§2.3.2), column k holding IDs of ``dpids[k]``; None when blank.

    Raises ``LineError``: Format Error for the layout, the field grammar, DPUUID rules and (c2c)
    a second column that is not a lower-case SHA-256; otherwise Invalid AAM ID / Invalid Device
    ID for the first column failing its namespace. Only an empty row (after one CR) is blank.
    """
    if len(dpids) < 2:
        raise ValueError(f"an ID-sync file has at least two DPIDs, got {dpids!r}")
    raw = raw[:-1] if raw.endswith(b"\r") else raw
    if not raw:
        return None
    text = _decode(raw, max_line_bytes, "row")
    if text[-1] in "\t ":
        raise _format_error(f"row ends with a {'TAB' if text[-1] == chr(9) else 'space'}",
                            "such rows are not processed: remove trailing TABs and spaces")
    fields = tuple(text.split("\t"))
    if len(fields) != len(dpids):
        raise _format_error(f"row has {len(fields)} columns, the file name lists {len(dpids)} DPIDs",
                            "write one TAB-separated column per DPID of the file name, master first")
    for k, field in enumerate(fields, start=1):
        _check_sync_field(k, field)
    failures = [_check_sync_id(k, field, dpid, c2c, reject_email_like)
                for k, (field, dpid) in enumerate(zip(fields, dpids, strict=True), start=1)]
    found = [f for f in failures if f is not None]
    if found:
        raise next((f for f in found if f.bucket is Bucket.FORMAT_ERROR), found[0])
    return fields


def _check_sync_field(k: int, field: str) -> None:
    if not field:
        raise _format_error(f"column {k} is empty (two TABs in a row)", "every column needs an ID")
    if field != field.strip(" "):
        raise _format_error(f"column {k} has leading or trailing spaces", "remove the spaces around the ID")
    if _SYNC_FIELD_FORBIDDEN.search(field):  # only SP gets here: the row had no control characters
        raise _format_error(f"column {k} contains a space", "IDs in ID-sync files contain no spaces (§2.3.2)")


def _check_sync_id(k: int, field: str, dpid: int, c2c: bool, reject_email_like: bool) -> LineError | None:
    if c2c and k == 2:
        if ids.check_hashed_email(field):
            return None
        return LineError(Bucket.FORMAT_ERROR, f"column 2 {_excerpt(field)} is not a lower-case SHA-256 hex digest",
                         "send sha256(lower(trim(email))) as 64 lower-case hex characters, unsalted")
    return _check_id(field, _sync_namespace(dpid), f"column {k}", reject_email_like)


def _sync_namespace(dpid: int) -> Namespace:
    if dpid == ids.PLATFORM_UUID_DPID:
        return "platform_uuid"
    return dpid if ids.is_global_device_dpid(dpid) else "customer"


# --- Messages ------------------------------------------------------------------------------------


def _format_error(reason: str, hint: str) -> LineError:
    return LineError(Bucket.FORMAT_ERROR, reason, hint)


def _excerpt(text: str, *, mask_private: bool = False) -> str:
    """Quote part of a line for a message: shortened; items keyed ``p_…`` lose their value
    (§4.2: private values never reach logs or reject files)."""
    if mask_private and _PRIVATE_KEY.match(text):
        key, eq, _ = text.partition("=")
        text = f"{key}=***" if eq else "***"
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 3] + "..."
    return repr(text)
