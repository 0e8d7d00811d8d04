"""Trait-rule semantics (SPEC §4.4, D-44) on every generator: tests/fixtures/rules/evaluate.yaml.

Each case runs on the Python evaluator and on the DuckDB SQL the engine uses, and, for pure
equality rules, through the equality join tokens.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from onramp.rules.compile_duckdb import to_duckdb_sql
from onramp.rules.equality import eq_tokens_for_value, equality_dnf
from onramp.rules.evaluate import evaluate
from onramp.rules.parser import parse_trait_rule

GOLDEN = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "rules" / "evaluate.yaml").read_text(encoding="utf-8"))
CASES = GOLDEN["cases"]


def ids(case):
    return f"{case['rule']} | {case['signals']}"


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as connection:
        yield connection


def signal_list(signals):
    return [{"k": k, "v": v} for k, values in signals.items() for v in values]


def python_engine(rule, signals, con):
    return evaluate(rule, signals)


def duckdb_engine(rule, signals, con):
    return con.execute("SELECT " + to_duckdb_sql(rule, "$signals"), {"signals": signal_list(signals)}).fetchone()[0]


@pytest.mark.parametrize("engine", [python_engine, duckdb_engine], ids=["python", "duckdb"])
@pytest.mark.parametrize("case", CASES, ids=ids)
def test_golden(case, engine, con):
    rule = parse_trait_rule(case["rule"])
    assert engine(rule, case["signals"], con) is case["expected"]


@pytest.mark.parametrize("case", [c for c in CASES if equality_dnf(parse_trait_rule(c["rule"])) is not None], ids=ids)
def test_golden_through_equality_tokens(case):
    dnf = equality_dnf(parse_trait_rule(case["rule"]))
    tokens = {k: {t for v in values for t in eq_tokens_for_value(v)} for k, values in case["signals"].items()}
    assert any(all(tok in tokens.get(key, ()) for key, tok in term) for term in dnf) is case["expected"]


def test_sql_is_never_null(con):
    rule = parse_trait_rule('NOT a != "x" AND NOT b < 3 OR NOT c matcheswords "y"')
    for signals in (None, [], [{"k": "a", "v": None}], [{"k": None, "v": None}]):
        got = con.execute("SELECT " + to_duckdb_sql(rule, "$s::STRUCT(k VARCHAR, v VARCHAR)[]"), {"s": signals}).fetchone()[0]
        assert got is not None


def test_sql_escapes_quotes(con):
    rule = parse_trait_rule("a == \"it's\" OR a matchesregex \"'.*\" OR a contains \"''\"")
    assert duckdb_engine(rule, {"a": ["IT'S"]}, con) is True
    assert duckdb_engine(rule, {"a": ["'quoted"]}, con) is True
    assert duckdb_engine(rule, {"a": ["x''y"]}, con) is True
    assert duckdb_engine(rule, {"a": ["its"]}, con) is False


def test_sql_over_a_table_column(con):
    """The shape the engine uses: one row per line, a list of signal structs per row."""
    rule = parse_trait_rule('(price >= 1.00 AND price <= 100.00) OR ic == "123"')
    rows = con.execute(
        f"""SELECT line, {to_duckdb_sql(rule, "signals")} FROM (VALUES
            (1, [{{'k': 'price', 'v': '5'}}]),
            (2, [{{'k': 'price', 'v': '500'}}]),
            (3, [{{'k': 'ic', 'v': '123'}}]),
            (4, []::STRUCT(k VARCHAR, v VARCHAR)[])) t(line, signals) ORDER BY line"""
    ).fetchall()
    assert rows == [(1, True), (2, False), (3, True), (4, False)]
