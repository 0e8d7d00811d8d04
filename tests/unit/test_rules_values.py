"""Value semantics shared by every generator (SPEC §4.4): numbers, case folding, words."""

from __future__ import annotations

import duckdb
import pytest

from onramp.rules import unicode_tables
from onramp.rules.compile_duckdb import sql_canonical_decimal, sql_is_number, sql_number_sort_key, sql_words
from onramp.rules.values import canonical_decimal, fold, is_number, number_sort_key, words

NUMBERS = ["0", "-0", "00", "0.0", "-0.000", "7", "007", "-007.50", "1.0", "1.05", "10", "100", "100.001", "-1", "-10.5",
           "0.5", "0.25", "-0.5", "99999999999999999999999999999999999999", "59767559181262060060278870901087098252",
           "1" + "0" * 60, "0." + "0" * 50 + "1"]


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as connection:
        yield connection


@pytest.mark.parametrize("text", ["1", "-1", "1.5", "-0.0", "007", "1" * 60])
def test_numbers(text):
    assert is_number(text)


@pytest.mark.parametrize("text", ["", "-", "+1", "1.", ".5", "1e5", " 1", "1 ", "1,5", "١٢", "--1", "1.2.3", "0x10"])
def test_not_numbers(text, con):
    assert not is_number(text)
    assert con.execute(f"SELECT {sql_is_number('$v')}", {"v": text}).fetchone()[0] is False


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("007", "7"), ("1.500", "1.5"), ("1.0", "1"), ("-0.0", "0"), ("-0", "0"), ("00.50", "0.5"), ("-007.010", "-7.01"), ("100", "100")],
)
def test_canonical_decimal(text, canonical, con):
    assert canonical_decimal(text) == canonical
    assert con.execute(f"SELECT {sql_canonical_decimal('$v')}", {"v": text}).fetchone()[0] == canonical


def test_sort_keys_order_like_decimals(con):
    from decimal import Decimal

    ordered = sorted(NUMBERS, key=Decimal)
    keys = [number_sort_key(n) for n in ordered]
    for a, b, ka, kb in zip(ordered, ordered[1:], keys, keys[1:]):
        assert (ka < kb) == (Decimal(a) < Decimal(b)) and (ka == kb) == (Decimal(a) == Decimal(b)), (a, b)
    sql = [con.execute(f"SELECT {sql_number_sort_key('$v')}", {"v": n}).fetchone()[0] for n in ordered]
    assert sql == keys


@pytest.mark.parametrize(
    ("text", "folded"),
    [("ABC", "abc"), ("İstanbul", "istanbul"), ("ΟΔΟΣ", "οδοσ"), ("Straße", "straße"), ("ǅ", "ǆ")],
)
def test_fold_is_per_character_like_duckdb(text, folded, con):
    assert fold(text) == folded
    assert con.execute("SELECT lower($v)", {"v": text}).fetchone()[0] == folded


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("digital SLR camera", ["digital", "slr", "camera"]),
        ("a-b_c.d", ["a", "b", "c", "d"]),
        ("“Café crème”", ["café", "crème"]),
        ("日本語テキスト", ["日本語テキスト"]),
        ("x²y", ["x²y"]),
        ("--", []),
    ],
)
def test_words(text, expected, con):
    assert words(text) == expected
    assert con.execute(f"SELECT {sql_words('$v')}", {"v": text}).fetchone()[0] == " " + " ".join(expected) + " "


def test_word_table_matches_this_python():
    import unicodedata

    # A different Python brings another Unicode version: regenerate the table, don't skip.
    assert unicodedata.unidata_version == unicode_tables.UNICODE_VERSION, "regenerate onramp/rules/unicode_tables.py"
    assert unicode_tables.generate() == unicode_tables.ALNUM_RANGES
