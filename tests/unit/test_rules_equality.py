"""Equality decomposition for joins (SPEC §4.4 `==`, §4.6): tokens and DNF."""

from __future__ import annotations

import duckdb
import pytest

from onramp.rules.ast import Literal
from onramp.rules.equality import MAX_DNF_ATOMS, eq_token_for_literal, eq_tokens_for_value, equality_dnf, sql_eq_tokens
from onramp.rules.parser import parse_trait_rule


@pytest.mark.parametrize(
    ("literal", "token"),
    [
        (Literal("123", "string"), "s:123"),
        (Literal("Female", "string"), "s:female"),
        (Literal("NY", "bareword"), "s:ny"),
        (Literal("123", "number"), "n:123"),
        (Literal("007.50", "number"), "n:7.5"),
        (Literal("-0.0", "number"), "n:0"),
        (Literal("1.0", "number"), "n:1"),
    ],
)
def test_literal_tokens(literal, token):
    assert eq_token_for_literal(literal) == token


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("123", ["s:123", "n:123"]),
        ("0123", ["s:0123", "n:123"]),
        ("1.50", ["s:1.50", "n:1.5"]),
        ("-0", ["s:-0", "n:0"]),
        ("-00.000", ["s:-00.000", "n:0"]),
        ("10", ["s:10", "n:10"]),
        ("100.0", ["s:100.0", "n:100"]),
        ("-1.0100", ["s:-1.0100", "n:-1.01"]),
        ("Tablet", ["s:tablet"]),
        ("1e5", ["s:1e5"]),
        ("1.", ["s:1."]),
        ("İSTANBUL", ["s:istanbul"]),
        ("59767559181262060060278870901087098252", ["s:59767559181262060060278870901087098252", "n:59767559181262060060278870901087098252"]),
    ],
)
def test_value_tokens_python_and_sql(value, tokens):
    assert eq_tokens_for_value(value) == tokens
    with duckdb.connect() as con:
        assert con.execute(f"SELECT {sql_eq_tokens('$v')}", {"v": value}).fetchone()[0] == tokens


@pytest.mark.parametrize(
    ("text", "dnf"),
    [
        ('ic == "123"', [[("ic", "s:123")]]),
        ("ic == 123", [[("ic", "n:123")]]),
        ('(c_make=="A") AND (c_model=="B")', [[("c_make", "s:a"), ("c_model", "s:b")]]),
        ('(a == "1" OR b == "1") AND (c == "new")', [[("a", "s:1"), ("c", "s:new")], [("b", "s:1"), ("c", "s:new")]]),
        ("a == 1 OR a == 1.0", [[("a", "n:1")]]),
        ("a == 1 AND a == 1.0", [[("a", "n:1")]]),
        ("(a == 1 OR b == 2) AND (c == 3 OR d == 4)", [[("a", "n:1"), ("c", "n:3")], [("a", "n:1"), ("d", "n:4")], [("b", "n:2"), ("c", "n:3")], [("b", "n:2"), ("d", "n:4")]]),
        ("a == 1 AND a == 2", [[("a", "n:1"), ("a", "n:2")]]),
    ],
)
def test_dnf(text, dnf):
    assert equality_dnf(parse_trait_rule(text)) == dnf


@pytest.mark.parametrize(
    "text",
    ["a != 1", "NOT a == 1", "a == 1 AND NOT b == 2", "a == 1 OR b contains 2", "a >= 1", 'a matchesregex "x"'],
)
def test_not_pure_equality(text):
    assert equality_dnf(parse_trait_rule(text)) is None


def test_dnf_gives_up_when_distribution_explodes():
    clauses = " AND ".join(f"(a{i} == 1 OR b{i} == 2)" for i in range(12))  # 4096 terms x 12 atoms
    assert 2**12 * 12 > MAX_DNF_ATOMS
    assert equality_dnf(parse_trait_rule(clauses)) is None
    eight = " AND ".join(f"(a{i} == 1 OR b{i} == 2)" for i in range(8))  # 256 terms
    assert len(equality_dnf(parse_trait_rule(eight))) == 256


def test_a_long_list_of_values_stays_a_join():
    rule = parse_trait_rule(" OR ".join(f"ic == {n}" for n in range(5000)))
    dnf = equality_dnf(rule)
    assert dnf is not None and len(dnf) == 5000
