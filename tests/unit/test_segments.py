"""Segment expressions (SPEC §5.1–§5.3, D-46..D-48): tests/fixtures/rules/segments.yaml."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from onramp.errors import RuleSyntaxError
from onramp.rules.ast import And, Not, Or
from onramp.rules.segments import (
    Frequency,
    TraitRef,
    evaluate_segment,
    parse_segment_expression,
    segment_to_text,
    segment_trait_ids,
    validate_segment,
)

GOLDEN = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "rules" / "segments.yaml").read_text(encoding="utf-8"))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
TRAIT_TYPES = {
    1: "onboarded",
    2: "rule_based",
    1000: "RULE_BASED",
    3: "folder",
    4: "algorithmic",
    123: "onboarded",
    456: "onboarded",
    789: "onboarded",
}


@pytest.mark.parametrize("case", GOLDEN["parse"], ids=lambda c: c["text"])
def test_parse_golden(case):
    expr = parse_segment_expression(case["text"])
    assert segment_to_text(expr) == case["canonical"]
    assert segment_trait_ids(expr) == frozenset(case["traits"])
    assert parse_segment_expression(segment_to_text(expr)) == expr


@pytest.mark.parametrize("case", GOLDEN["errors"], ids=lambda c: c["text"])
def test_error_golden(case):
    with pytest.raises(RuleSyntaxError) as info:
        parse_segment_expression(case["text"])
    assert info.value.column == case["column"], str(info.value)
    assert case["message"] in info.value.message
    assert info.value.hint
    if "hint" in case:
        assert case["hint"] in info.value.hint


@pytest.mark.parametrize("case", GOLDEN["validate"], ids=lambda c: c["text"])
def test_validate_golden(case):
    problems = validate_segment(parse_segment_expression(case["text"]), TRAIT_TYPES)
    assert len(problems) == len(case["problems"]), problems
    for problem, fragment in zip(problems, case["problems"]):
        assert fragment in problem


@pytest.mark.parametrize("case", GOLDEN["evaluate"], ids=lambda c: f"{c['text']} | {c['realizations']}")
def test_evaluate_golden(case):
    realizations = {sid: [NOW - timedelta(days=d) for d in days] for sid, days in case["realizations"].items()}
    assert evaluate_segment(parse_segment_expression(case["text"]), realizations, NOW) is case["expected"]


def test_tree_shapes():
    assert parse_segment_expression("FREQUENCY([123T, 456T] <= 5D) >= 3") == Frequency((123, 456), ("<=", 5), ">=", 3)
    assert parse_segment_expression("frequency([1T] => 2D) => 4") == Frequency((1,), (">=", 2), ">=", 4)
    assert parse_segment_expression("(123T OR 456T) AND NOT 789T") == And(Or(TraitRef(123), TraitRef(456)), Not(TraitRef(789)))


def test_bare_reference_equals_frequency_at_least_one():
    """D-46: 123T means FREQUENCY([123T]) >= 1."""
    bare = parse_segment_expression("123T")
    freq = parse_segment_expression("FREQUENCY([123T]) >= 1")
    for times in ([], [NOW], [NOW - timedelta(days=400), NOW]):
        assert evaluate_segment(bare, {123: times}, NOW) == evaluate_segment(freq, {123: times}, NOW)


def test_recency_windows_partition_at_the_same_boundary():
    """A realization exactly N days old counts for both "<= N D" and ">= N D"."""
    times = {1: [NOW - timedelta(days=5)]}
    assert evaluate_segment(parse_segment_expression("FREQUENCY([1T] <= 5D) >= 1"), times, NOW)
    assert evaluate_segment(parse_segment_expression("FREQUENCY([1T] >= 5D) >= 1"), times, NOW)
    assert not evaluate_segment(parse_segment_expression("FREQUENCY([1T] <= 4D) >= 1"), times, NOW)
    assert not evaluate_segment(parse_segment_expression("FREQUENCY([1T] >= 6D) >= 1"), times, NOW)


def test_more_than_5000_traits_is_a_problem():
    many = " OR ".join(f"{sid}T" for sid in range(1, 5002))
    types = {sid: "rule_based" for sid in range(1, 5002)}
    problems = validate_segment(parse_segment_expression(many), types)
    assert problems == ["the segment uses 5001 traits; at most 5000 are allowed"]
    exactly = " OR ".join(f"{sid}T" for sid in range(1, 5001))
    assert validate_segment(parse_segment_expression(exactly), types) == []


def test_nesting_is_limited_with_a_column():
    assert parse_segment_expression("(" * 100 + "1T" + ")" * 100) == TraitRef(1)
    with pytest.raises(RuleSyntaxError) as info:
        parse_segment_expression("(" * 101 + "1T" + ")" * 101)
    assert info.value.column == 101
