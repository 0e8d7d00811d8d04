"""User-ID validators (SPEC §1.3–§1.5, D-04..D-08) and their RE2 twins in DuckDB."""

from __future__ import annotations

import re

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onramp.formats import ids
from onramp.formats.ids import (
    DPUUID_COLON,
    DPUUID_CONTROL,
    DPUUID_EMAIL,
    DPUUID_EMPTY,
    DPUUID_ENCODED_COLON,
    DPUUID_FORBIDDEN_RE,
    DPUUID_HINTS,
    DPUUID_TOO_LONG,
    EMAIL_LIKE_RE,
    GLOBAL_DEVICE_SOURCES,
    HASHED_EMAIL_RE,
    PLATFORM_UUID_RE,
    ZERO_GUID,
    check_device_id,
    check_dpuuid,
    check_hashed_email,
    check_platform_uuid,
)

UUID = "07955261652886032950143702505894272138"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (UUID, True),  # §1.3 example
        ("59767559181262060060278870901087098252", True),
        ("0" * 38, True),  # leading zeros are significant, all-zero is still 38 digits
        (UUID[:-1], False),
        (UUID + "1", False),
        ("", False),
        (UUID[:-1] + "a", False),
        ("+" + UUID[1:], False),
        (" " + UUID[1:], False),
        (UUID + "\n", False),  # `$` alone would accept this
        ("\u0660" * 38, False),  # Arabic-Indic digits are not [0-9]
        ("7955261652886032950143702505894272138", False),  # the integer form lost its leading zero
    ],
)
def test_check_platform_uuid(value, valid):
    assert check_platform_uuid(value) is valid


GAID = "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"


@pytest.mark.parametrize(
    ("dpid", "value", "valid"),
    [
        (20914, GAID, True),
        (20914, GAID.upper(), False),  # §1.5: wrong case is an error, no normalization
        (20914, GAID.replace("-", ""), False),
        (20914, "{" + GAID + "}", False),
        (20914, GAID + "\n", False),
        (20915, IDFA, True),
        (20915, IDFA.lower(), False),
        (20915, IDFA[:-1], False),
        (121963, "fcb2a29c-315a-5e6b-bcfd-d889ba19aada", True),
        (488258, "df07c7dc-cea7-4a89-b328-810ff5acb15d", True),
        (1171485, "095f142a-ace8-ac5d-b86a-92c8be18b197", True),
        (1171485, "095F142A-ACE8-AC5D-B86A-92C8BE18B197", False),
        (1171489, "7XCBNROQJQPYW", True),
        # D-07: alphanumerics with inner hyphens, 1–100 characters, case preserved
        (389146, "a", True),
        (389146, "AbC-123-xyz", True),
        (389146, GAID, True),
        (389146, "a" * 100, True),
        (389146, "a" * 101, False),
        (389146, "-abc", False),
        (389146, "abc-", False),
        (389146, "a_b", False),
        (389146, "", False),
        (963906, "TIFA-1234", True),
        (963906, "ab c", False),
        # D-08: the all-zero GUID is invalid for every source, whatever its format
        (20914, ZERO_GUID, False),
        (20915, ZERO_GUID, False),
        (121963, ZERO_GUID, False),
        (389146, ZERO_GUID, False),
        (1171489, ZERO_GUID, False),
        (20914, "00000000-0000-0000-0000-000000000001", True),
    ],
)
def test_check_device_id(dpid, value, valid):
    assert check_device_id(dpid, value) is valid


@pytest.mark.parametrize("source", GLOBAL_DEVICE_SOURCES.values(), ids=lambda s: s.name)
def test_every_documented_example_is_valid(source):
    if source.example is not None:
        assert check_device_id(source.dpid, source.example)


@pytest.mark.parametrize("dpid", [0, 21, 12345])
def test_check_device_id_needs_a_global_dpid(dpid):
    with pytest.raises(ValueError, match="not a global device data source"):
        check_device_id(dpid, GAID)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("XYZ3017D_2kzkTOXkFYIAgwbajoqWRcqkXl-TTrj6E4njaMR38", None),
        ("User123", None),
        ("ab c/1", None),  # §2.1.1: spaces and '/' are fine
        ("  ", None),
        ("a" * 1024, None),
        ("é" * 512, None),  # 1,024 UTF-8 bytes
        ("\u0085x", None),  # C1 controls are not C0 controls
        ("caf\u00e9+1", None),
        ("%3", None),
        ("%3B", None),
        ("4598060374", None),
        ("", DPUUID_EMPTY),
        ("a" * 1025, DPUUID_TOO_LONG),
        ("é" * 512 + "a", DPUUID_TOO_LONG),
        ("A:B", DPUUID_COLON),  # §3.4 Format Error example
        (":", DPUUID_COLON),
        ("a%3Ab", DPUUID_ENCODED_COLON),  # D-04, both hex cases
        ("a%3ab", DPUUID_ENCODED_COLON),
        ("a\tb", DPUUID_CONTROL),
        ("a\rb", DPUUID_CONTROL),
        ("a\nb", DPUUID_CONTROL),
        ("a\x00b", DPUUID_CONTROL),
        ("a\x1fb", DPUUID_CONTROL),
        ("a\x7fb", DPUUID_CONTROL),
        ("a\x01:b", DPUUID_CONTROL),  # rules apply in a fixed order
        ("a:%3Ab", DPUUID_COLON),
        # D-05: raw-email look-alikes
        ("someone@example.com", DPUUID_EMAIL),
        ("a@b.c", DPUUID_EMAIL),
        ("first.last+tag@sub.example.co.uk", DPUUID_EMAIL),
        ("a@b", None),
        ("a@@b.c", None),
        ("a b@c.d", None),
        ("@b.c", None),
        ("a@.c", None),
        ("a@.b.c", DPUUID_EMAIL),  # the domain part may itself start with a dot
        ("a@b.", None),
        ("a\u00a0b@c.d", DPUUID_EMAIL),  # RE2's \s has no U+00A0; we behave like RE2
        ("6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e", None),
    ],
)
def test_check_dpuuid(value, reason):
    assert check_dpuuid(value) == reason


def test_email_rule_can_be_switched_off():
    assert check_dpuuid("someone@example.com", reject_email_like=False) is None
    assert check_dpuuid("some:one@example.com", reject_email_like=False) == DPUUID_COLON


def test_every_dpuuid_reason_has_a_hint():
    reasons = {DPUUID_EMPTY, DPUUID_TOO_LONG, DPUUID_CONTROL, DPUUID_COLON, DPUUID_ENCODED_COLON, DPUUID_EMAIL}
    assert set(DPUUID_HINTS) == reasons
    assert all(DPUUID_HINTS.values())


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e", True),
        ("6B3A55E0261B0304143F805A24924D0C1C44524821305F31D9277843B8A10F4E", False),
        ("6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4", False),
        ("6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e0", False),
        ("someone@example.com", False),
    ],
)
def test_check_hashed_email(value, valid):
    assert check_hashed_email(value) is valid


# --- The exported patterns mean the same in DuckDB (RE2) as in Python ----------------------------

PATTERNS = {
    "platform_uuid": PLATFORM_UUID_RE,
    "dpuuid_forbidden": DPUUID_FORBIDDEN_RE,
    "email_like": EMAIL_LIKE_RE,
    "hashed_email": HASHED_EMAIL_RE,
    **{f"device_{d}": f.regex for d, f in GLOBAL_DEVICE_SOURCES.items()},
}
_LOOKAROUND = re.compile(r"\(\?[=!<]|\\[1-9]")

probe_text = st.text(
    alphabet=st.sampled_from(list("0123456789abcdefABCDEF-:%3@. \t\r\n\x00\x1f\x7f\u00a0\u0085é_")), max_size=70
) | st.sampled_from([UUID, GAID, IDFA, ZERO_GUID, "a@b.c", "x%3ay", "a" * 100])


@pytest.fixture(scope="module")
def duck():
    con = duckdb.connect()
    yield con
    con.close()


@pytest.mark.parametrize("name", PATTERNS)
def test_patterns_are_re2_compatible(name, duck):
    pattern = PATTERNS[name]
    assert not _LOOKAROUND.search(pattern), "RE2 has no lookarounds or backreferences"
    duck.execute("select regexp_matches('', ?)", [pattern]).fetchall()


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(probe_text, min_size=1, max_size=30))
def test_patterns_agree_with_duckdb(duck, texts):
    columns = ", ".join(f"regexp_matches(t, ${i + 2})" for i in range(len(PATTERNS)))
    rows = duck.execute(f"select {columns} from unnest($1) as u(t)", [texts, *PATTERNS.values()]).fetchall()
    for text, row in zip(texts, rows, strict=True):
        for (name, pattern), in_duckdb in zip(PATTERNS.items(), row, strict=True):
            # Anchored patterns are used with fullmatch in Python (`$` there also matches before "\n").
            python_match = re.fullmatch if pattern.startswith("^") else re.search
            assert in_duckdb == (python_match(pattern, text) is not None), (name, text)


def test_dpuuid_forbidden_pattern_matches_the_python_rules():
    # The SQL engine tests DPUUID_FORBIDDEN_RE once; Python checks rule by rule. Same verdicts.
    rule_reasons = {DPUUID_CONTROL, DPUUID_COLON, DPUUID_ENCODED_COLON}
    for value in ["a:b", "a%3ab", "a%3Ab", "a\x00", "a\x7f", "a\tb", "ok", "%3", "a%3Bb", "\u0085"]:
        forbidden = re.search(DPUUID_FORBIDDEN_RE, value) is not None
        assert forbidden == (check_dpuuid(value) in rule_reasons), value


def test_existing_names_kept():
    assert ids.PLATFORM_UUID_DPID == 0
    assert ids.is_global_device_dpid(20914) and not ids.is_global_device_dpid(21)
    assert ids.is_device_namespace(0)
