"""The production engine (DuckDB plan) against the reference line parser, line by line.

Hypothesis writes ONE data file per example — a mix of valid items of every §3.4 form in
every quoting variant, empty items, malformed items, bad UTF-8, control characters, extra
or missing TABs, CRLF, over-long lines (``max_line_bytes`` is varied per example) and user
IDs that are valid or invalid for the file's namespace — runs ``run_job(dry_run=True)`` on
it and compares every line's bucket with the one the reference predicts:

* structure (``split_data_line``) → the per-user cap (modelled here, §3.6/§3.7) →
  user ID (``check_user_id``, §3.5) → items (``parse_items``, §3.4);
* for lines the reference accepts: STORED when the line adds a valid trait (``d_sid`` of an
  onboarded trait of the target), removes one (``.sync`` only), or one of the target's rules
  holds on its signals (reference rule evaluator, §4.4–§4.6); otherwise NO_TRAIT_REALIZED.

Only namespaces that need no ID sync are used (cross-device, platform UUID, global device),
so no line can end NO_MATCHING_AAM_ID. Engine buckets come from ``JobResult.problems``
(every non-stored line; stored lines are absent); the receipt's Records received checks the
blank-line decisions.
"""

from __future__ import annotations

import itertools
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onramp.formats.buckets import Bucket
from onramp.formats.lines import LineError, check_user_id, parse_items, split_data_line
from onramp.intake.reader import UTF8_BOM
from onramp.rules.evaluate import evaluate
from onramp.rules.parser import parse_trait_rule
from onramp.service import rejects as reject_rows
from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

PARTNER = 7
CAP = 3  # max_lines_per_user: small, so the §3.6 cap is exercised with a handful of lines
OWNERS = (21, 22, 23)
OTHER_TRAIT = 9  # onboarded, but owned by data source 55 of another partner
UNKNOWN_TRAIT = 424242


def _rules(owner: int) -> dict[int, str | None]:
    """The onboarded traits of ``owner``: sid → rule (None: realized by d_sid only)."""
    base = owner * 10
    return {
        base + 1: None,
        base + 2: 'ic == "1"',
        base + 3: 'product contains "tab"',  # not an equality rule: the engine's SQL-expression path
        base + 4: 'kind == "k"',  # a key with a 'k': U+212A KELVIN SIGN lower-cases to 'k' in Unicode
        base + 5: 'c_size >= 10 AND c_color == "red"',
        base + 6: '(c_color == "red" AND kind == "k") OR ic == "10"',  # equality terms of two atoms and of one
    }


RULE_BASED = {owner: owner * 10 + 9 for owner in OWNERS}  # type rule_based: d_sid fails validation

TAXONOMY = "\n".join(
    [
        "partners:",
        "  - {pid: 7, name: acme}",
        "  - {pid: 9, name: other}",
        "data_sources:",
        "  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}",
        "  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}",
        "  - {dpid: 23, owner: 7, name: uuids, id_type: cookie, inbound_id_type: platform_uuid}",
        "  - {dpid: 55, owner: 9, name: other, id_type: cross_device, inbound_id_type: customer_id}",
        "traits:",
        f"  - {{sid: {OTHER_TRAIT}, name: t9, data_source: 55, type: onboarded}}",
        *(
            f"  - {{sid: {sid}, name: t{sid}, data_source: {owner}, type: onboarded"
            + (f", rule: '{rule}'}}" if rule else "}")
            for owner in OWNERS
            for sid, rule in _rules(owner).items()
        ),
        *(
            f"  - {{sid: {sid}, name: rb{sid}, data_source: {owner}, type: rule_based, rule: 'x == \"1\"'}}"
            for owner, sid in RULE_BASED.items()
        ),
    ]
)

COMPILED = {owner: {sid: parse_trait_rule(r) for sid, r in _rules(owner).items() if r} for owner in OWNERS}


@dataclass(frozen=True)
class FileKind:
    """A file-name shape: which namespace column 1 is in and which data source owns the traits."""

    dpids: str  # the numeric groups of the name
    namespace: int | str  # as check_user_id takes it
    owner: int


FILE_KINDS = (
    FileKind("22", "customer", 22),  # cross-device customer IDs: no ID sync needed
    FileKind("22_21", "customer", 21),
    FileKind("23", "platform_uuid", 23),
    FileKind("23_22", "platform_uuid", 22),
    FileKind("20914_21", 20914, 21),  # GAID
    FileKind("20915_22", 20915, 22),  # IDFA
    FileKind("389146_23", 389146, 23),  # MAID (alphanumeric)
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("engine_vs_reference") / "data"
    con = connect(load_settings(data_dir=data_dir))
    try:
        taxonomy, _ = load_taxonomy(TAXONOMY)
        apply_taxonomy(con, taxonomy)
    finally:
        con.close()
    return data_dir


# --- The reference model ----------------------------------------------------------------------


def file_lines(content: bytes) -> list[bytes]:
    """Lines as §3.3/§3.7 see them: BOM at offset 0 skipped, split on LF, no phantom last line."""
    content = content.removeprefix(UTF8_BOM)
    if not content:
        return []
    lines = content.split(b"\n")
    if content.endswith(b"\n"):
        lines.pop()
    return lines


@dataclass(frozen=True)
class Expected:
    bucket: Bucket | None  # None: blank line (not received)
    why: str


def valid_traits(owner: int) -> set[int]:
    return set(_rules(owner))


def realizes(items, owner: int, overwrite: bool) -> tuple[bool, str]:
    """Does a parsed line change any trait of ``owner`` (R or X non-empty, §3.7/§4.6)?"""
    valid = valid_traits(owner)
    for item in items:
        if item.kind == "add" and int(item.value) in valid:
            return True, f"d_sid={item.value} is an onboarded trait of {owner}"
        if item.kind == "remove" and not overwrite and int(item.value) in valid:
            return True, f"removal of {item.value}, an onboarded trait of {owner}"
    signals: dict[str, list[str]] = {}
    for item in items:
        if item.kind == "signal":
            signals.setdefault(item.key, []).append(item.value)
    for sid, rule in COMPILED[owner].items():
        if evaluate(rule, signals):
            return True, f"rule of trait {sid} holds on {signals!r}"
    return False, f"no valid directive; no rule holds on {signals!r}"


def reference(lines: list[bytes], kind: FileKind, *, overwrite: bool, max_line_bytes: int) -> dict[int, Expected]:
    """line number → expected bucket, by the reference parser and §3.7's order."""
    out: dict[int, Expected] = {}
    per_user: Counter[str] = Counter()
    for line_no, raw in enumerate(lines, 1):
        try:
            split = split_data_line(raw, max_line_bytes=max_line_bytes)
        except LineError as exc:
            out[line_no] = Expected(exc.bucket, f"structure: {exc.reason}")
            continue
        if split is None:
            out[line_no] = Expected(None, "blank")
            continue
        if per_user[split.user_id] >= CAP:
            out[line_no] = Expected(Bucket.DISCARDED, f"line {CAP + 1}+ of user {split.user_id!r}")
            continue
        per_user[split.user_id] += 1
        bad_id = check_user_id(split.user_id, namespace=kind.namespace)
        if bad_id is not None:
            out[line_no] = Expected(bad_id.bucket, f"user ID: {bad_id.reason}")
            continue
        try:
            items = parse_items(split.item_text)
        except LineError as exc:
            out[line_no] = Expected(exc.bucket, f"items: {exc.reason}")
            continue
        stored, why = realizes(items, kind.owner, overwrite)
        out[line_no] = Expected(Bucket.STORED if stored else Bucket.NO_TRAIT_REALIZED, why)
    return out


# --- Running the engine -----------------------------------------------------------------------


def _lenient_diagnose(raw: bytes, odc: bool) -> str:
    return reject_rows.diagnose_line(raw, odc) or "REFERENCE PARSER ACCEPTS THIS LINE\x1f"


def _lenient_register_diagnose(con):
    """Like ``rejects._register_diagnose`` but never returns NULL (used only to explain a crash).
    Module-level callable, as there: DuckDB keeps only a borrowed pointer to it."""
    from duckdb.sqltypes import BLOB, BOOLEAN, VARCHAR

    con.create_function("onramp_diagnose", _lenient_diagnose, [BLOB, BOOLEAN], VARCHAR, side_effects=False)


@contextmanager
def _no_patch():
    yield


def engine(data_dir: Path, path: Path, *, max_line_bytes: int, lenient: bool = False):
    s = load_settings(data_dir=data_dir, inbound={"max_line_bytes": max_line_bytes, "max_lines_per_user": CAP})
    patch = mock.patch.object(reject_rows, "_register_diagnose", _lenient_register_diagnose) if lenient else _no_patch()
    with patch:
        return run_job(s, [path], partner=PARTNER, dry_run=True)


def describe(lines: list[bytes], expected: dict[int, Expected], got: dict[int, str]) -> list[str]:
    diffs = []
    for n, exp in expected.items():
        want = None if exp.bucket in (None, Bucket.STORED) else exp.bucket.value
        if got.get(n) != want:
            shown = got.get(n, "stored (or blank)")
            diffs.append(f"line {n} {lines[n - 1]!r}: engine {shown}, reference {exp.bucket} ({exp.why})")
    for n in sorted(set(got) - set(expected)):
        diffs.append(f"line {n}: engine {got[n]} for a line the reference does not see")
    return diffs


def check_file(data_dir: Path, content: bytes, kind: FileKind, *, overwrite: bool, max_line_bytes: int, name_ts: int):
    mode = "overwrite" if overwrite else "sync"
    path = data_dir.parent / f"ftp_dpm_{kind.dpids}_{name_ts}.{mode}"
    path.write_bytes(content)
    lines = file_lines(content)
    expected = reference(lines, kind, overwrite=overwrite, max_line_bytes=max_line_bytes)
    received = sum(1 for e in expected.values() if e.bucket is not None)
    try:
        result = engine(data_dir, path, max_line_bytes=max_line_bytes)
    except Exception as crash:  # explain the crash with the per-line comparison
        try:
            again = engine(data_dir, path, max_line_bytes=max_line_bytes, lenient=True)
            diffs = describe(lines, expected, {p["line_number"]: p["bucket"] for p in again.problems})
            extra = [f"{p['line_number']}: {p['reason']}" for p in again.problems if "REFERENCE PARSER ACCEPTS" in p["reason"]]
        except Exception as second:  # noqa: BLE001
            diffs, extra = [f"(re-run with a lenient diagnose UDF failed too: {second!r})"], []
        raise AssertionError(
            f"run_job raised {type(crash).__name__}: {str(crash)[:300]}\n"
            + "\n".join(diffs + [f"diagnose() got a line the reference accepts: line {e}" for e in extra])
        ) from crash

    (receipt,) = result.receipts
    (entry,) = receipt.files
    if received == 0 or content.startswith(b"\x1f\x8b"):
        assert entry.status == "rejected", (entry, lines)
        assert not result.problems
        return
    assert entry.status == "accepted", entry
    got = {p["line_number"]: p["bucket"] for p in result.problems}
    assert len(got) == len(result.problems), "one problem per line"
    diffs = describe(lines, expected, got)
    assert not diffs, "engine and reference disagree:\n" + "\n".join(diffs)
    c = receipt.counters
    assert c["records_received"] == received
    assert c["stored_records"] == sum(1 for e in expected.values() if e.bucket is Bucket.STORED)


# --- Generators ---------------------------------------------------------------------------------

SPACES = st.sampled_from(["", "", " ", "  "])
DIGITS = st.from_regex(r"[0-9]{1,12}", fullmatch=True)
C0_DEL = "".join(map(chr, range(0x20))) + "\x7f"
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0_DEL)
ODD_CHARS = ["\u0130", "\u212a", "\u00df", "\u00e9", "\u201c", "\u201d", "\u00a0", "\u0085", "\u2028", "\ufeff", "\U0001f600", "|", ":"]


def _case(word: str):
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))
    )


@st.composite
def key_text(draw, base: str) -> str:
    """``base`` written as a key: maybe dashes (inside the quotes when quoted), maybe quoted."""
    dashes = draw(st.sampled_from(["", "", "-", "--"]))
    needs_quotes = base != base.strip(" ") or any(c in base for c in ',="')
    if needs_quotes or draw(st.booleans()):
        return f'"{dashes}{base}"'
    return dashes + base


@st.composite
def value_text(draw, value: str) -> str:
    needs_quotes = any(c in value for c in ',="') or value != value.strip(" ")
    return f'"{value}"' if needs_quotes or draw(st.booleans()) else value


def trait_ids(owner_pool=OWNERS):
    pool = [str(s) for o in owner_pool for s in valid_traits(o)] + [str(s) for s in RULE_BASED.values()]
    pool += [str(OTHER_TRAIT), str(UNKNOWN_TRAIT), "0", "0221", "99999999999999999999"]
    return st.one_of(st.sampled_from(pool), DIGITS)


@st.composite
def directive(draw) -> str:
    word = draw(st.sampled_from(["d_sid", "d_sid", "d_unsid"]).flatmap(_case))
    n = draw(trait_ids())
    return f"{draw(key_text(word))}{draw(SPACES)}={draw(SPACES)}{draw(value_text(n))}"


@st.composite
def colon_removal(draw) -> str:
    return f"{draw(trait_ids())}:{draw(st.sampled_from(['0', '-1']))}"


@st.composite
def ic_item(draw) -> str:
    value = draw(st.sampled_from(["1", "01", "1.0", "2", "x"]) | DIGITS)
    if draw(st.booleans()) and value.isdigit():
        return value  # bare number: ic signal (D-30)
    return f"{draw(key_text(draw(_case('ic'))))}{draw(SPACES)}={draw(SPACES)}{draw(value_text(value))}"


SIGNAL_KEYS = ["product", "PRODUCT", "c_size", "c_color", "kind", "\u212aind", "\u0130c", "d_s\u0130d", "x", "p_secret", "a b", "k\u00e9y"]
SIGNAL_VALUES = ["tablet", "Tab", "TABLET", "my tablet", "\u0130tab", "t\u0101b", "ta\u0301b", "red", "RED", "R\u0130D",
                 "10", "9.5", "10.0", "010", "+10", "1e1", "10.", ".5", "-0", " 10 ", "\u0661\u0660", "99999999999999999999999",
                 "k", "K", "\u212a", "1", "pickup truck", "a,b", "a=b", "\u201ctab\u201d", "New York", "|:|", "  padded  "]


@st.composite
def kv_item(draw) -> str:
    key = draw(st.sampled_from(SIGNAL_KEYS) | st.text(TEXT_CHARS, min_size=1, max_size=8))
    value = draw(st.sampled_from(SIGNAL_VALUES) | st.text(TEXT_CHARS, min_size=1, max_size=8))
    if '"' in key or '"' in value or not key.strip(" ").lstrip("-") or not value.strip(" "):
        key, value = "k2", "v2"
    return f"{draw(key_text(key))}{draw(SPACES)}={draw(SPACES)}{draw(value_text(value))}"


MALFORMED = [
    "tablet", '"123"', "12:5", "12:", ":0", "28:0:0", "d_sid=abc", 'd_sid=""', "d_sid=-1", "d_sid=1 2", "D_UNSID=x",
    '"a=1', 'a="1', "key=", 'key=""', "=v", '""=1', "--=1", "a=b=c", '"a"x=1', 'x"y"=1', '"a"="b"c', 'a = "b" c',
    '-"d_sid"=1', '"a" "b"=1', "28 :0", "28: 0", "d_sid=\uff11", 'a=""b""', '"', '""', "d_s\u0130d=x", "\u0130C", "1 2",
]


@st.composite
def items_text(draw) -> str:
    """An item list: items of every form, empty items and spaces between, sometimes a malformed one."""
    valid = st.one_of(directive(), colon_removal(), ic_item(), kv_item())
    items = draw(st.lists(valid, min_size=1, max_size=5))
    if draw(st.integers(0, 4)) == 0:
        bad = draw(st.sampled_from(MALFORMED) | st.text(st.sampled_from(list('",=: -ab1') + ODD_CHARS), max_size=6))
        items.insert(draw(st.integers(0, len(items))), bad)
    pieces = []
    for item in items:
        pieces.extend(draw(st.lists(SPACES, max_size=1)))  # empty items (D-26)
        pieces.append(f"{draw(SPACES)}{item}{draw(SPACES)}")
    if draw(st.booleans()):
        pieces.extend(draw(st.lists(SPACES, max_size=2)))
    return ",".join(pieces)


UUID38 = st.from_regex(r"[0-9]{38}", fullmatch=True)
LOWER_GUID = st.uuids().map(str)
UPPER_GUID = st.uuids().map(lambda u: str(u).upper())
ZERO_GUID = "00000000-0000-0000-0000-000000000000"

# (valid, invalid) user IDs per namespace; the generators add random ones of both kinds.
CUSTOMER_IDS = (
    ["u1", "U1", "visitor123", "DBwFoc3dhfMNCFBh2M4F9ZkJEXMNnRDh2PXvnI1", "x@y", "a b", " lead", "\u00fc\u00df",
     "a" * 1024, "\u00e9" * 512, "\u0130", "\u212a", "%3", "3A", "@x.y"],
    [":", "a:b", "a%3Ab", "b%3ax", "%3A", "x@y.z", "first.last@example.com", "a" * 1025, "\u00e9" * 513, "\u00e9" * 511 + "a:"],
)
UUID_IDS = (
    ["0" * 38, "07955261652886032950143702505894272138"],
    ["1" * 37, "1" * 39, "1" * 37 + "a", "\u0660" * 38, "\uff11" * 38, " " + "1" * 37, "-" + "1" * 37, "1" * 37 + "\u212a"],
)
GAID_IDS = (
    ["e4fe9bde-caa0-47b6-908d-ffba3fa184f2"],
    ["E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2", ZERO_GUID, "e4fe9bdecaa047b6908dffba3fa184f2", "{e4fe9bde-caa0-47b6-908d-ffba3fa184f2}"],
)
IDFA_IDS = (["6D92078A-8246-4BA4-AE5B-76104861E7DC"], ["6d92078a-8246-4ba4-ae5b-76104861e7dc", ZERO_GUID])
MAID_IDS = (["7XCBNROQJQPYW", "a", "a-b", "a" * 100], ["-ab", "ab-", "a_b", "a" * 101, "\u212a", "-", "a b"])


def user_ids(namespace):
    """Mostly valid IDs of ``namespace`` (so lines get as far as the items), often invalid ones."""
    random_text = st.text(TEXT_CHARS | st.sampled_from(ODD_CHARS), min_size=1, max_size=12)
    if namespace == "customer":
        pools, fresh = CUSTOMER_IDS, st.from_regex(r"[A-Za-z0-9_.-]{1,8}", fullmatch=True)
        random_text = random_text | st.from_regex(r"[a-z]{1,6}(@[a-z]{1,3}\.[a-z]{1,3}|%3[aA]|:)", fullmatch=True)
    elif namespace == "platform_uuid":
        pools, fresh = UUID_IDS, UUID38
    elif namespace == 20914:
        pools, fresh = GAID_IDS, LOWER_GUID
        random_text = random_text | UPPER_GUID
    elif namespace == 20915:
        pools, fresh = IDFA_IDS, UPPER_GUID
        random_text = random_text | LOWER_GUID
    else:
        pools, fresh = MAID_IDS, st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,12}[A-Za-z0-9])?", fullmatch=True)
    valid, invalid = pools
    return st.one_of(st.sampled_from(valid), fresh, fresh, st.sampled_from(invalid), random_text)


BAD_UTF8 = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"]
CONTROLS = [b"\x00", b"\x01", b"\x0b", b"\x0c", b"\r", b"\x1b", b"\x1f", b"\x7f"]
LINE_SHAPES = ["ok"] * 24 + ["no_tab", "extra_tab", "trailing_tab", "empty_uid", "control", "bad_utf8", "no_items",
                             "blank", "empty", "pad", "pad_spaces", "blank_long"]


@st.composite
def data_line(draw, uids: list[str], namespace, max_line_bytes: int) -> bytes:
    uid = draw(st.sampled_from(uids) if draw(st.integers(0, 4)) else user_ids(namespace))
    shape = draw(st.sampled_from(LINE_SHAPES))
    items = draw(items_text())
    if shape == "no_items":
        items = draw(st.sampled_from(["", " ", ",", " , ,", ",,"]))
    if shape == "empty_uid":
        uid = ""
    line = (uid + ("\t" if shape != "no_tab" else draw(st.sampled_from([" ", ""]))) + items).encode()
    line += draw(SPACES).encode()
    if shape == "extra_tab":
        at = draw(st.integers(len(uid) + 1, len(line)))
        line = line[:at] + b"\t" + line[at:]
    elif shape == "trailing_tab":
        line += b"\t" + draw(SPACES).encode()
    elif shape in ("control", "bad_utf8"):
        junk = draw(st.sampled_from(CONTROLS if shape == "control" else BAD_UTF8))
        at = draw(st.integers(0, len(line)))
        line = line[:at] + junk + line[at:]
    elif shape == "blank":
        line = b" " * draw(st.integers(1, 3))
    elif shape == "empty":
        line = b""
    elif shape == "blank_long":  # only spaces, but longer than the limit: still a blank line (§3.7 order)
        line = b" " * (max_line_bytes + draw(st.integers(1, 3)))
    elif shape in ("pad", "pad_spaces"):  # exactly at, just under or just over the limit
        target = max_line_bytes + draw(st.integers(-1, 1))
        room = target - len(line)
        if shape == "pad_spaces" and room > 0:
            line += b" " * room
        elif room >= 7:
            line += b",pad=" + b"p" * (room - 5)
    return line


@st.composite
def data_files(draw):
    kind = draw(st.sampled_from(FILE_KINDS))
    max_line_bytes = draw(st.sampled_from([60, 120, 1100, 102_400, 102_400, 102_400]))
    uids = draw(st.lists(user_ids(kind.namespace), min_size=1, max_size=4))
    lines = draw(st.lists(data_line(uids, kind.namespace, max_line_bytes), min_size=1, max_size=30))
    terminators = draw(st.lists(st.sampled_from([b"\n"] * 8 + [b"\r\n"] * 3 + [b"\r\r\n"]), min_size=len(lines), max_size=len(lines)))
    body = b"".join(line + t for line, t in zip(lines, terminators, strict=True))
    if draw(st.booleans()):
        body = body.removesuffix(terminators[-1])  # last line without a terminator
    if draw(st.integers(0, 5)) == 0:
        body = UTF8_BOM + body
    overwrite = draw(st.booleans())
    return body, kind, overwrite, max_line_bytes


_stamps = itertools.count(1_700_000_000)


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data_files())
def test_engine_buckets_match_reference(store, case):
    content, kind, overwrite, max_line_bytes = case
    check_file(store, content, kind, overwrite=overwrite, max_line_bytes=max_line_bytes, name_ts=next(_stamps))


# --- Pinned disagreements (each is one line the generator above also produces) ---------------

CUSTOMER = FILE_KINDS[0]


@pytest.mark.parametrize(
    "content, kind, max_line_bytes",
    [
        # Valid lines of every §3.4 form, as a smoke test of the harness itself.
        (b'u1\td_sid=221, "d_unsid" = "222",28:0, 1 ,,"-product"="my tablet", c_size=10,c_color=RED\n'
         b"u2\tcolor=blue\nu3\t229:-1\nu4\td_sid=9\n", CUSTOMER, 102_400),
        # §3.7: blank-line test comes before the length test; an all-space line is never received.
        (b"u1\td_sid=221\n" + b" " * 70 + b"\n", CUSTOMER, 60),
        # A line ending in CR CR LF: one CR is the terminator's, the other a control character.
        (b"u1\td_sid=221\r\r\n", CUSTOMER, 102_400),
        # D-24 + lines.py: keys are lower-cased for ASCII letters only; U+0130 is not 'i'.
        ("u1\td_s\u0130d=x\n".encode(), CUSTOMER, 102_400),
        ("u1\t\u0130c=1\n".encode(), CUSTOMER, 102_400),
        ("u1\t\u212aind=k\n".encode(), CUSTOMER, 102_400),
        # An equality term of two atoms holds only when both do; a one-atom term on its own.
        (b"u1\tc_color=red\nu2\tkind=k,c_color=RED\nu3\tic=10.0\nu4\tkind=k\n", CUSTOMER, 102_400),
        # An atom's value under another key (which some atom also uses) matches nothing.
        (b"u1\tkind=1\nu2\tkind=red,c_color=k\nu3\tc_color=10,kind=k\n", CUSTOMER, 102_400),
    ],
    ids=["smoke", "blank-over-long", "cr-cr-lf", "dotted-I-directive", "dotted-I-ic", "kelvin-key", "two-atom-term",
         "value-under-another-key"],
)
def test_pinned_lines(store, content, kind, max_line_bytes):
    check_file(store, content, kind, overwrite=False, max_line_bytes=max_line_bytes, name_ts=next(_stamps))
