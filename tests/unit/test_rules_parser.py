"""Golden table for the trait-rule grammar (SPEC §4.2, §4.3): tests/fixtures/rules/trait_rules.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from onramp.errors import RuleSyntaxError
from onramp.rules.ast import And, Comparison, Literal, Not, Or, rule_keys, to_text
from onramp.rules.parser import parse_trait_rule

GOLDEN = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "rules" / "trait_rules.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", GOLDEN["parse"], ids=lambda c: c["text"])
def test_parse_golden(case):
    rule = parse_trait_rule(case["text"])
    assert to_text(rule) == case["canonical"]
    assert rule_keys(rule) == frozenset(case["keys"])
    assert parse_trait_rule(to_text(rule)) == rule


@pytest.mark.parametrize("case", GOLDEN["errors"], ids=lambda c: c["text"])
def test_error_golden(case):
    with pytest.raises(RuleSyntaxError) as info:
        parse_trait_rule(case["text"])
    err = info.value
    assert err.column == case["column"], str(err)
    assert case["message"] in err.message
    assert err.hint, "every error carries a fix hint"
    assert err.text == case["text"]
    assert err.excerpt.splitlines()[-1] == " " * (case["column"] - 1) + "^"


def c(key: str, op: str, text: str, kind: str = "string") -> Comparison:
    return Comparison(key, op, Literal(text, kind))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ('ic == "123"', c("ic", "==", "123")),
        ("ic == 123", c("ic", "==", "123", "number")),
        ("ic == -1.50", c("ic", "==", "-1.50", "number")),
        ("ic == x1", c("ic", "==", "x1", "bareword")),
        ('K == "a\\"b"', c("k", "==", 'a"b')),
        ("a => 1", c("a", ">=", "1", "number")),
        ("a CONTAINS x", c("a", "contains", "x", "bareword")),
        # precedence: NOT > AND > OR; same level associates left
        ("a == 1 OR b == 2 AND c == 3", Or(c("a", "==", "1", "number"), And(c("b", "==", "2", "number"), c("c", "==", "3", "number")))),
        ("a == 1 AND b == 2 AND c == 3", And(And(c("a", "==", "1", "number"), c("b", "==", "2", "number")), c("c", "==", "3", "number"))),
        ("a == 1 OR b == 2 OR c == 3", Or(Or(c("a", "==", "1", "number"), c("b", "==", "2", "number")), c("c", "==", "3", "number"))),
        ("NOT a == 1 AND b == 2", And(Not(c("a", "==", "1", "number")), c("b", "==", "2", "number"))),
        ("a == 1 AND NOT b == 2", And(c("a", "==", "1", "number"), Not(c("b", "==", "2", "number")))),
        ("NOT (a == 1 OR b == 2)", Not(Or(c("a", "==", "1", "number"), c("b", "==", "2", "number")))),
    ],
)
def test_tree_shape(text, tree):
    assert parse_trait_rule(text) == tree


def test_to_text_refuses_a_quoted_value_ending_in_a_backslash():
    with pytest.raises(ValueError):
        to_text(c("a", "==", "x\\"))


def test_nesting_is_limited_with_a_column():
    assert parse_trait_rule("NOT " * 100 + "a == 1") is not None
    with pytest.raises(RuleSyntaxError) as info:
        parse_trait_rule("NOT " * 101 + "a == 1")
    assert info.value.column == 401


def test_long_chains_do_not_recurse():
    rule = parse_trait_rule(" OR ".join(f"k{i} contains x" for i in range(3000)))
    assert len(rule_keys(rule)) == 3000
    assert to_text(rule) == " OR ".join(f"k{i} contains x" for i in range(3000))
