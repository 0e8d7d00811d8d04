"""The reference line parser (SPEC §3.4–§3.7, §3.2.1, §2.3.2).

Text cases live in tests/fixtures/lines/data_lines.json (every §3.4, §3.2.1 and §6.3 example
and the Appendix A quirks); byte-level cases, user-ID checks and ID-sync rows are tables here.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import duckdb
import pytest

from onramp.formats.buckets import Bucket
from onramp.formats.ids import ZERO_GUID
from onramp.formats.lines import (
    LINE_CONTROL_RE,
    MAX_LINE_BYTES,
    SYNC_FIELD_FORBIDDEN_RE,
    Item,
    LineError,
    ParsedLine,
    SplitLine,
    ascii_lower,
    check_user_id,
    normalize_key,
    odc_namespace,
    parse_data_line,
    parse_items,
    parse_sync_row,
    split_data_line,
)

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures" / "lines" / "data_lines.json").read_text("utf-8"))
CASES = GOLDEN["cases"]


def raw(line: str) -> bytes:
    return line.replace("<TAB>", "\t").replace("<CR>", "\r").encode("utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c["source"] for c in CASES])
def test_golden_data_lines(case):
    line = raw(case["line"])
    odc = case.get("odc", False)
    if "error" in case:
        with pytest.raises(LineError) as info:
            parse_data_line(line, odc=odc)
        error = info.value
        assert error.bucket is Bucket.FORMAT_ERROR
        assert case["error"]["reason"] in error.reason
        assert error.item_position == case["error"]["item"]
        assert error.hint
        return
    parsed = parse_data_line(line, odc=odc)
    if case.get("blank"):
        assert parsed is None
        return
    expected_items = tuple(Item(i, kind, key, value, text) for i, (kind, key, value, text) in enumerate(case["items"]))
    assert parsed == ParsedLine(case.get("id_type"), case["user_id"], expected_items)
    if "user_check" in case:
        check = case["user_check"]
        error = check_user_id(parsed.user_id, namespace=check["namespace"])
        if check["bucket"] is None:
            assert error is None
        else:
            assert error is not None and error.bucket == Bucket(check["bucket"])
            assert check["reason"] in error.reason


def test_message_style():
    with pytest.raises(LineError) as info:
        parse_data_line(b"ABC\tcolor=red,size=9,d_sid=x")
    assert str(info.value) == "item 3 'd_sid=x': trait ID must be digits — write d_sid=123"
    assert info.value.item_position == 2
    assert info.value.message == info.value.reason


def test_stages_follow_section_3_7():
    # The user ID is validated before the items: a bad device ID with a malformed item is an
    # Invalid Device ID, which the stages let the caller decide.
    split = split_data_line(b"6d92078a-8246-4ba4-ae5b-76104861e7dc\ttablet")
    assert split == SplitLine(None, "6d92078a-8246-4ba4-ae5b-76104861e7dc", "tablet")
    error = check_user_id(split.user_id, namespace=20915)
    assert error is not None and error.bucket is Bucket.INVALID_DEVICE_ID
    with pytest.raises(LineError):
        parse_items(split.item_text)


BYTE_CASES = [
    (b"u1\td_sid=1\xff", "invalid UTF-8 at byte 11"),
    (b"\xc3\x28\td_sid=1", "invalid UTF-8 at byte 1"),
    (b"u1\td_sid=1,a=\xed\xa0\x80", "invalid UTF-8"),  # an encoded surrogate
    (b"u1\td_sid=1,a=\xc0\xaf", "invalid UTF-8"),  # an overlong '/'
    (b"u\x001\td_sid=1", "control character U+0000 at character 2"),
    (b"u1\ta=b\x1b[0m", "control character U+001B"),
    (b"u1\ta=b\x7f", "control character U+007F"),
    (b"u1\ta=b\x0c", "control character U+000C"),
    (b"u1\ta=b\n", "control character U+000A"),
    (b"u1\ta=\"x\x0by\"", "control character U+000B"),
]


@pytest.mark.parametrize(("line", "reason"), BYTE_CASES)
def test_byte_level_format_errors(line, reason):
    with pytest.raises(LineError) as info:
        parse_data_line(line)
    assert info.value.bucket is Bucket.FORMAT_ERROR
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("line", "items"),
    [
        ("u1\ta=\u0085\u00a0x", (Item(0, "signal", "a", "\u0085\u00a0x", "a=\u0085\u00a0x"),)),  # C1 and NBSP are not C0
        ("\ufeffu1\ta=1", (Item(0, "signal", "a", "1", "a=1"),)),  # a BOM after offset 0 is data
        ("u1\tk=\u65e5\u672c", (Item(0, "signal", "k", "\u65e5\u672c", "k=\u65e5\u672c"),)),
    ],
)
def test_non_ascii_is_data(line, items):
    parsed = parse_data_line(line.encode("utf-8"))
    assert parsed is not None and parsed.items == items


def test_line_length_limit():
    # §3.6 / D-32: at most 102,400 bytes, excluding the terminator (LF, or CR LF).
    prefix = b"u1\td_sid=1,k="
    at_limit = prefix + b"v" * (MAX_LINE_BYTES - len(prefix))
    assert len(at_limit) == MAX_LINE_BYTES
    assert parse_data_line(at_limit) is not None
    assert parse_data_line(at_limit + b"\r") is not None
    with pytest.raises(LineError) as info:
        parse_data_line(at_limit + b"v")
    assert "102,401 bytes, over the 102,400-byte limit" in info.value.reason
    # measured before trailing spaces are trimmed
    with pytest.raises(LineError):
        parse_data_line(at_limit + b" ")
    # over-length wins over everything else on the line
    with pytest.raises(LineError, match="over the 10-byte limit"):
        parse_data_line(b"\xff" * 11, max_line_bytes=10)
    assert parse_data_line(b"u\t1234567", max_line_bytes=9) is not None


def test_blank_space_only_line_may_be_long():
    assert parse_data_line(b" " * (MAX_LINE_BYTES + 5)) is None


@pytest.mark.parametrize(
    ("namespace", "user_id", "bucket", "reason", "hint"),
    [
        ("platform_uuid", "07955261652886032950143702505894272138", None, None, None),
        ("platform_uuid", "0795526165288603295014370250589427213", Bucket.INVALID_AAM_ID, "is not a platform UUID", "38 digits"),
        ("platform_uuid", "abc", Bucket.INVALID_AAM_ID, "user ID 'abc' is not a platform UUID", "38 digits"),
        ("customer", "XYZ3017D_2kzkTOXkFYIAgwbajoqWRcqkXl-TTrj6E4njaMR38", None, None, None),
        ("customer", "A:B", Bucket.FORMAT_ERROR, "user ID 'A:B' contains ':'", "':'"),
        ("customer", "a%3Ab", Bucket.FORMAT_ERROR, "contains '%3A'", "URL-encoded"),
        ("customer", "x" * 1025, Bucket.FORMAT_ERROR, "is longer than 1,024 bytes", "1,024"),
        ("customer", "someone@example.com", Bucket.FORMAT_ERROR, "looks like a raw email address", "SHA-256"),
        ("customer", " u 1 ", None, None, None),
        (20914, "e4fe9bde-caa0-47b6-908d-ffba3fa184f2", None, None, None),
        (20914, "E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2", Bucket.INVALID_DEVICE_ID, "not a valid Google Advertising ID", "lower-case"),
        (20915, "6d92078a-8246-4ba4-ae5b-76104861e7dc", Bucket.INVALID_DEVICE_ID, "not a valid Apple IDFA", "6D92078A-8246-4BA4-AE5B-76104861E7DC"),
        (20915, ZERO_GUID, Bucket.INVALID_DEVICE_ID, "all-zero device ID", "limited ad tracking"),
        (389146, "abc-", Bucket.INVALID_DEVICE_ID, "Microsoft Advertising ID", "inner hyphens"),
        (1171489, "7XCBNROQJQPYW", None, None, None),
        (121963, "someone@example.com", Bucket.INVALID_DEVICE_ID, "Roku RIDA", "lower-case"),
    ],
)
def test_check_user_id(namespace, user_id, bucket, reason, hint):
    error = check_user_id(user_id, namespace=namespace)
    if bucket is None:
        assert error is None
        return
    assert error is not None
    assert error.bucket is bucket
    assert reason in error.reason
    assert hint in error.hint
    assert error.item_position is None


def test_check_user_id_email_rule_is_configurable():
    assert check_user_id("someone@example.com", namespace="customer", reject_email_like=False) is None


@pytest.mark.parametrize("namespace", [0, 21, "device", "PLATFORM_UUID"])
def test_check_user_id_rejects_unknown_namespaces(namespace):
    with pytest.raises(ValueError, match="namespace"):
        check_user_id("x", namespace=namespace)


@pytest.mark.parametrize(
    ("id_type", "dpid"),
    [
        ("idfa", 20915), ("IDFA", 20915), ("IdFa", 20915),
        ("android device id", 20914), ("Android Device ID", 20914), ("android", 20914),
        ("GAID", 20914), ("gaid", 20914), ("aaid", 20914), ("AAID", 20914),
        ("android_device_id", None), ("android  device id", None), (" idfa", None), ("", None),
        ("roku", None), ("\u0130dfa", None),
    ],
)
def test_odc_namespace(id_type, dpid):
    assert odc_namespace(id_type) == dpid


def test_key_normalization_is_ascii_only():
    assert ascii_lower("AbC-\u00c4\u0130") == "abc-\u00c4\u0130"
    assert normalize_key("--D_SID") == "d_sid"
    assert normalize_key("a-B") == "a-b"


# --- ID-sync rows (§2.3.2) -----------------------------------------------------------------------

UUID = "68079982765673198504052656074456196039"
CUSTOMER = "XYZ3017D_2kzkTOXkFYIAgwbajoqWRcqkXl-TTrj6E4njaMR38"
GAID = "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"
HASH = hashlib.sha256(b"someone@example.com").hexdigest()  # of the trimmed, lower-cased email

SYNC_VALID = [
    # §2.3.3 worked example, file 1 and file 2
    (f"{UUID}\t{CUSTOMER}".encode(), (0, 12345), False, (UUID, CUSTOMER)),
    (f"{CUSTOMER}\t4598060374".encode(), (12345, 67890), False, (CUSTOMER, "4598060374")),
    # D-16 CRLF
    (f"{UUID}\t{CUSTOMER}\r".encode(), (0, 12345), False, (UUID, CUSTOMER)),
    # master + 3 DPIDs needs 4 columns
    (f"{UUID}\ta\tb\tc".encode(), (0, 1, 2, 3), False, (UUID, "a", "b", "c")),
    # global device master
    (f"{GAID}\tcrm-1".encode(), (20914, 12345), False, (GAID, "crm-1")),
    # App. A: c2c_id_ with a lower-case SHA-256 second column
    (f"crm-1\t{HASH}".encode(), (123, 898), True, ("crm-1", HASH)),
    # non-ASCII is allowed in IDs
    ("caf\u00e9\t\u65e5".encode(), (1, 2), False, ("caf\u00e9", "\u65e5")),
]


@pytest.mark.parametrize(("row", "dpids", "c2c", "fields"), SYNC_VALID)
def test_sync_rows_valid(row, dpids, c2c, fields):
    assert parse_sync_row(row, dpids, c2c=c2c) == fields


@pytest.mark.parametrize("row", [b"", b"\r"])
def test_sync_blank_rows(row):
    assert parse_sync_row(row, (0, 1), c2c=False) is None


SYNC_INVALID = [
    # (row, dpids, c2c, bucket, reason)
    (f"{UUID}\t{CUSTOMER}\t".encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "row ends with a TAB"),
    (f"{UUID}\t{CUSTOMER} ".encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "row ends with a space"),
    (f"{UUID}\t{CUSTOMER} \r".encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "row ends with a space"),
    (b" ", (0, 12345), False, Bucket.FORMAT_ERROR, "row ends with a space"),  # only empty rows are blank
    (b"\r\r", (0, 12345), False, Bucket.FORMAT_ERROR, "control character U+000D"),
    (UUID.encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "row has 1 columns, the file name lists 2 DPIDs"),
    (f"{UUID}\ta\tb".encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "row has 3 columns"),
    (f"{UUID}\t\tb".encode(), (0, 1, 2), False, Bucket.FORMAT_ERROR, "column 2 is empty"),
    (f"\t{CUSTOMER}".encode(), (0, 1), False, Bucket.FORMAT_ERROR, "column 1 is empty"),
    (f" {UUID}\t{CUSTOMER}".encode(), (0, 1), False, Bucket.FORMAT_ERROR, "column 1 has leading or trailing spaces"),
    (f"{UUID} \t{CUSTOMER}".encode(), (0, 1), False, Bucket.FORMAT_ERROR, "column 1 has leading or trailing spaces"),
    (b"a b\tc", (1, 2), False, Bucket.FORMAT_ERROR, "column 1 contains a space"),
    (b"a\x01\tc", (1, 2), False, Bucket.FORMAT_ERROR, "control character U+0001"),
    (b"a\tc\x7f", (1, 2), False, Bucket.FORMAT_ERROR, "control character U+007F"),
    (b"a\xff\tc", (1, 2), False, Bucket.FORMAT_ERROR, "invalid UTF-8"),
    (b"a\t" + b"c" * MAX_LINE_BYTES, (1, 2), False, Bucket.FORMAT_ERROR, "over the 102,400-byte limit"),
    # customer columns follow §1.4
    (b"a:b\tc", (1, 2), False, Bucket.FORMAT_ERROR, "column 1 'a:b' contains ':'"),
    (b"a\tsomeone@example.com", (1, 2), False, Bucket.FORMAT_ERROR, "column 2 'someone@example.com' looks like a raw email"),
    (b"a\tx%3ay", (1, 2), False, Bucket.FORMAT_ERROR, "contains '%3A'"),
    # c2c hashed-email column
    (f"crm-1\t{HASH.upper()}".encode(), (123, 898), True, Bucket.FORMAT_ERROR, "column 2"),
    (b"crm-1\tsomeone@example.com", (123, 898), True, Bucket.FORMAT_ERROR, "is not a lower-case SHA-256 hex digest"),
    (f"crm-1\t{HASH[:-1]}".encode(), (123, 898), True, Bucket.FORMAT_ERROR, "SHA-256"),
    (f"a:b\t{HASH}".encode(), (123, 898), True, Bucket.FORMAT_ERROR, "column 1 'a:b' contains ':'"),
    # namespace failures
    (f"{UUID[:-1]}\t{CUSTOMER}".encode(), (0, 12345), False, Bucket.INVALID_AAM_ID, "column 1"),
    (f"{CUSTOMER}\t{UUID}x".encode(), (12345, 0), False, Bucket.INVALID_AAM_ID, "column 2"),
    (f"{GAID.upper()}\tcrm-1".encode(), (20914, 12345), False, Bucket.INVALID_DEVICE_ID, "column 1"),
    (f"{UUID}\t{ZERO_GUID}".encode(), (0, 20915), False, Bucket.INVALID_DEVICE_ID, "all-zero"),
    # precedence: any Format Error first, then the first failing column
    (f"{UUID[:-1]}\ta:b".encode(), (0, 12345), False, Bucket.FORMAT_ERROR, "column 2 'a:b' contains ':'"),
    (f"{UUID[:-1]}\t{GAID.upper()}".encode(), (0, 20914), False, Bucket.INVALID_AAM_ID, "column 1"),
    (f"{UUID}\t{GAID.upper()}\t{UUID[:-1]}".encode(), (0, 20914, 0), False, Bucket.INVALID_DEVICE_ID, "column 2"),
]


@pytest.mark.parametrize(("row", "dpids", "c2c", "bucket", "reason"), SYNC_INVALID)
def test_sync_rows_invalid(row, dpids, c2c, bucket, reason):
    with pytest.raises(LineError) as info:
        parse_sync_row(row, dpids, c2c=c2c)
    assert info.value.bucket is bucket
    assert reason in info.value.reason
    assert info.value.hint


def test_sync_row_options():
    assert parse_sync_row(b"a\tsomeone@example.com", (1, 2), c2c=False, reject_email_like=False) == ("a", "someone@example.com")
    with pytest.raises(LineError, match="over the 5-byte limit"):
        parse_sync_row(b"ab\tcde", (1, 2), c2c=False, max_line_bytes=5)
    with pytest.raises(ValueError, match="at least two DPIDs"):
        parse_sync_row(b"a", (1,), c2c=False)


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        (LINE_CONTROL_RE, "a\tb", False),
        (LINE_CONTROL_RE, "a\rb", True),
        (LINE_CONTROL_RE, "a\x00b", True),
        (LINE_CONTROL_RE, "a\x7f", True),
        (LINE_CONTROL_RE, "a\x85 \u00a0", False),
        (SYNC_FIELD_FORBIDDEN_RE, "a b", True),
        (SYNC_FIELD_FORBIDDEN_RE, "a\tb", True),
        (SYNC_FIELD_FORBIDDEN_RE, "a\x7f", True),
        (SYNC_FIELD_FORBIDDEN_RE, "ab~\u00e9", False),
    ],
)
def test_exported_patterns_mean_the_same_in_duckdb(pattern, text, found):
    # The engine classifies lines in DuckDB SQL with these very patterns (RE2).
    con = duckdb.connect()
    try:
        assert con.execute("select regexp_matches(?, ?)", [text, pattern]).fetchall() == [(found,)]
    finally:
        con.close()
    assert (re.search(pattern, text) is not None) is found
