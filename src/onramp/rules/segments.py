"""Segment expressions (SPEC §5.1–§5.3): parse, validate, evaluate.

``123T`` tests current qualification (D-46); ``FREQUENCY([1T, 2T] <= 5D) >= 3`` counts the
realizations of any listed trait, optionally within (``<=``) or before (``>=``) a number of
days. The boolean layer (AND, OR, NOT, AND NOT, parentheses) is the one trait rules use.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Union

from onramp.rules.ast import OPERATOR_ALIASES, And, Not, Or, chain, render_boolean, walk
from onramp.rules.parser import BooleanParser
from onramp.rules.tokens import SEGMENT_LEXICON, Token, TokenType, tokenize

MAX_TRAITS_PER_SEGMENT = 5_000  # §5.3
# D-47: recency and frequency only on these trait types; others allow a bare ref or ">= 1".
RECENCY_FREQUENCY_TYPES = frozenset({"rule_based", "folder"})

RECENCY_OPERATORS = frozenset({"<=", ">="})
FREQUENCY_OPERATORS: dict[str, Callable[[int, int], bool]] = {">=": operator.ge, "<=": operator.le, "==": operator.eq}

_TRAIT_REF = re.compile(r"([0-9]+)T")
_DAYS = re.compile(r"([0-9]+)D")
_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class TraitRef:
    """``123T``: the profile currently qualifies for trait 123 (D-46)."""

    sid: int


@dataclass(frozen=True)
class Frequency:
    """``FREQUENCY([sids] recency) op count``; ``recency`` is ("<=" | ">=", days) or None."""

    sids: tuple[int, ...]
    recency: tuple[str, int] | None
    op: str
    count: int


SegExpr = Union[TraitRef, Frequency, "And[SegExpr]", "Or[SegExpr]", "Not[SegExpr]"]


class SegmentParser(BooleanParser):
    what = "segment expression"
    leaf_hint = "a segment expression is made of trait references like 123T and FREQUENCY([123T]) >= 2, joined by AND, OR and NOT"

    def primary(self) -> SegExpr:
        token = self.token
        if token.type is TokenType.WORD and token.text.upper() == "FREQUENCY":
            self.advance()
            return self.frequency()
        if token.type is TokenType.WORD and _TRAIT_REF.fullmatch(token.text):
            self.advance()
            return TraitRef(int(token.text[:-1]))
        if token.type is TokenType.WORD and self.keyword(token):
            raise self.error(f"expected a trait reference, found the keyword {token.text.upper()}", hint=self.leaf_hint)
        raise self.error(f"expected a trait reference like 123T or FREQUENCY(...), found {token.describe()}", hint=_ref_hint(token) or self.leaf_hint)

    def frequency(self) -> Frequency:
        self.expect(TokenType.LPAREN, "'(' after FREQUENCY", hint="write FREQUENCY([123T]) >= 2")
        self.expect(TokenType.LBRACKET, "'[' to open the trait list", hint="write FREQUENCY([123T, 456T]) >= 2")
        sids = [self.trait_ref()]
        while self.token.type is TokenType.COMMA:
            self.advance()
            sids.append(self.trait_ref())
        self.expect(TokenType.RBRACKET, "',' or ']' after a trait reference", hint="separate traits with commas and close the list with ]")
        recency = None
        if self.token.type is TokenType.OPERATOR:
            op = self.comparison_operator(RECENCY_OPERATORS, "recency compares with <= or >= (write <= 5D or >= 5D)")
            recency = (op, self.number(_DAYS, "a number of days like 5D", "recency is a whole number of days followed by D, e.g. <= 5D"))
        self.expect(TokenType.RPAREN, "')' to close FREQUENCY(", hint="write FREQUENCY([123T] <= 5D) >= 2")
        if self.token.type is not TokenType.OPERATOR:
            raise self.error(f"expected >=, <= or == after FREQUENCY(...), found {self.token.describe()}", hint="write FREQUENCY([123T]) >= 2")
        op = self.comparison_operator(frozenset(FREQUENCY_OPERATORS), "frequency compares with >=, <= or ==")
        count = self.number(_COUNT, "a count", "the frequency is a whole number, e.g. >= 3")
        return Frequency(tuple(sids), recency, op, count)

    def trait_ref(self) -> int:
        token = self.token
        if token.type is TokenType.WORD and _TRAIT_REF.fullmatch(token.text):
            self.advance()
            return int(token.text[:-1])
        raise self.error(f"expected a trait reference like 123T, found {token.describe()}", hint=_ref_hint(token) or "list traits as [123T, 456T]")

    def comparison_operator(self, allowed: frozenset[str], hint: str) -> str:
        token = self.advance()
        op = OPERATOR_ALIASES.get(token.text, token.text)
        if op not in allowed:
            raise self.error(f"operator {token.text!r} is not allowed here", token, hint=hint)
        return op

    def number(self, pattern: re.Pattern[str], what: str, hint: str) -> int:
        token = self.token
        if token.type is not TokenType.WORD or not pattern.fullmatch(token.text):
            raise self.error(f"expected {what}, found {token.describe()}", hint=hint)
        self.advance()
        return int(token.text.rstrip("D"))


def _ref_hint(token: Token) -> str | None:
    if token.type is not TokenType.WORD:
        return None
    if token.text.isdigit():
        return f"trait references end in T: write {token.text}T"
    if re.fullmatch(r"[0-9]+t", token.text):
        return f"write {token.text[:-1]}T (capital T)"
    return None


def parse_segment_expression(text: str) -> SegExpr:
    """Parse a segment expression (§5.1); raises RuleSyntaxError with a 1-based column."""
    return SegmentParser(text, tokenize(text, SEGMENT_LEXICON)).parse()


def _leaf_text(node: object) -> str:
    if isinstance(node, TraitRef):
        return f"{node.sid}T"
    assert isinstance(node, Frequency), node
    recency = f" {node.recency[0]} {node.recency[1]}D" if node.recency else ""
    return f"FREQUENCY([{', '.join(f'{sid}T' for sid in node.sids)}]{recency}) {node.op} {node.count}"


def segment_to_text(expr: SegExpr) -> str:
    """Canonical text that parses back to ``expr``."""
    return render_boolean(expr, _leaf_text)


def segment_trait_ids(expr: SegExpr) -> frozenset[int]:
    out: set[int] = set()
    for node in walk(expr):
        if isinstance(node, TraitRef):
            out.add(node.sid)
        elif isinstance(node, Frequency):
            out.update(node.sids)
    return frozenset(out)


# -- evaluation --------------------------------------------------------------------------------


def _counts(recency: tuple[str, int] | None, realized_at: datetime, now: datetime) -> bool:
    if recency is None:
        return True
    op, days = recency
    age = now - realized_at
    # §5.2: "<= N D" = within the last N days; ">= N D" = N or more days ago (24-hour days).
    return age <= timedelta(days=days) if op == "<=" else age >= timedelta(days=days)


def _frequency(node: Frequency, realizations: Mapping[int, Sequence[datetime]], now: datetime) -> bool:
    count = sum(
        1 for sid in dict.fromkeys(node.sids) for realized_at in realizations.get(sid, ()) if _counts(node.recency, realized_at, now)
    )
    return FREQUENCY_OPERATORS[node.op](count, node.count)


_NODES: dict[type, Callable[..., bool]] = {
    TraitRef: lambda n, r, now: len(r.get(n.sid, ())) > 0,
    Frequency: _frequency,
    And: lambda n, r, now: all(evaluate_segment(operand, r, now) for operand in chain(n)),
    Or: lambda n, r, now: any(evaluate_segment(operand, r, now) for operand in chain(n)),
    Not: lambda n, r, now: not evaluate_segment(n.operand, r, now),
}


def evaluate_segment(expr: SegExpr, realizations: Mapping[int, Sequence[datetime]], now: datetime) -> bool:
    """Does a profile qualify? ``realizations`` holds the unexpired realization times per trait.

    A listed trait counts once even if listed twice. ``now`` and the realization times must be
    comparable (all UTC-aware, or all naive UTC).
    """
    return _NODES[type(expr)](expr, realizations, now)


# -- validation --------------------------------------------------------------------------------

_EMPTY_PROFILE_NOW = datetime(2000, 1, 1, tzinfo=timezone.utc)  # irrelevant: nothing to count


def validate_segment(expr: SegExpr, trait_types: Mapping[int, str]) -> list[str]:
    """Every problem with a segment (§5.3, D-47, D-48); an empty list means it is valid.

    ``trait_types`` maps each existing trait visible to the owner to its type
    (``onboarded``, ``rule_based``, ``algorithmic``, ``folder``; case-insensitive).
    """
    problems: list[str] = []
    sids = segment_trait_ids(expr)
    for sid in sorted(sids - set(trait_types)):
        problems.append(f"trait {sid}T does not exist or is not visible to the segment owner")
    if len(sids) > MAX_TRAITS_PER_SEGMENT:
        problems.append(f"the segment uses {len(sids)} traits; at most {MAX_TRAITS_PER_SEGMENT} are allowed")
    for node in walk(expr):
        if not isinstance(node, Frequency):
            continue
        text = _leaf_text(node)
        if node.recency is not None and node.recency[1] <= 0:
            problems.append(f"{text}: recency must be greater than 0 days")
        restricted = [sid for sid in node.sids if sid in trait_types and trait_types[sid].lower() not in RECENCY_FREQUENCY_TYPES]
        if restricted and (node.recency is not None or (node.op, node.count) != (">=", 1)):
            names = ", ".join(f"{sid}T ({trait_types[sid].lower()})" for sid in dict.fromkeys(restricted))
            problems.append(
                f"{text}: recency and frequency are allowed only on rule-based and folder traits, not on {names}; "
                f"use a bare reference or FREQUENCY([...]) >= 1 (D-47)"
            )
    if evaluate_segment(expr, {}, _EMPTY_PROFILE_NOW):
        problems.append(
            "the expression is true for a profile with no traits, so it would qualify every user (D-48); "
            "combine it with a positive condition, e.g. ... AND 123T"
        )
    return problems
