"""Java regular expressions for matchesregex (SPEC §4.4): tests/fixtures/rules/regex.yaml.

Every pattern is checked on both translations: Python ``re`` and DuckDB's RE2.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import yaml

from onramp.errors import RuleSyntaxError
from onramp.rules.regex import java_to_python, java_to_re2

GOLDEN = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "rules" / "regex.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as connection:
        yield connection


@pytest.mark.parametrize("case", GOLDEN["translate"], ids=lambda c: c["pattern"])
def test_translate_golden(case, con):
    re2, python = java_to_re2(case["pattern"]), java_to_python(case["pattern"])
    for value, expected in [(v, True) for v in case["match"]] + [(v, False) for v in case["no_match"]]:
        assert (re.fullmatch(python, value) is not None) is expected, (value, python)
        assert con.execute("SELECT regexp_full_match(?, ?)", [value, re2]).fetchone()[0] is expected, (value, re2)


@pytest.mark.parametrize("case", GOLDEN["errors"], ids=lambda c: c["pattern"])
def test_error_golden(case):
    with pytest.raises(RuleSyntaxError) as info:
        java_to_re2(case["pattern"])
    assert info.value.column == case["column"], str(info.value)
    assert case["message"] in info.value.message


@pytest.mark.parametrize("pattern", ["(a{10}){101}", "((a{2}){2}){251}", "a{1001}", "(\\p{L}{1000})"])
def test_refused_patterns_are_refused_by_re2_too(pattern, con):
    """The limits we check mirror RE2's: DuckDB cannot compile the plain Java spelling either."""
    naive = pattern.replace("\\p{L}", "\\pL")
    with pytest.raises(duckdb.Error):
        con.execute("SELECT regexp_full_match('a', ?)", [naive]).fetchall()


def test_largest_accepted_patterns_compile_in_re2(con):
    for pattern in ["(a{10}){100}", "((a{2}){2}){250}", "a{1000}", ".{1000}", "(?:[^a]{1000})", "(abcdefghij){1000}"]:
        con.execute("SELECT regexp_full_match('a', ?)", [java_to_re2(pattern)]).fetchall()
