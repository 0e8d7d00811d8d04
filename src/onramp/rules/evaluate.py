"""The Python evaluator of trait rules (SPEC §4.4, D-44): the reference semantics.

Used by ``validate``, tests and small in-process checks; the engine runs the DuckDB generator,
and property tests hold the two to the same answers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from onramp.rules.ast import And, Comparison, Literal, Not, Or, Rule, chain
from onramp.rules.regex import compile_java_regex
from onramp.rules.values import contains_words, fold, is_number, to_decimal, words

ValueTest = Callable[[str], bool]


def _equals(literal: Literal) -> ValueTest:
    # §4.4: numeric equality when the literal is a number and the value parses as one; else
    # case-insensitive text. A quoted "123" is text (it still equals the value 123 as text).
    folded = fold(literal.text)
    if literal.kind == "number":
        number = to_decimal(literal.text)
        return lambda v: to_decimal(v) == number if is_number(v) else fold(v) == folded
    return lambda v: fold(v) == folded


def _relational(compare: Callable) -> Callable[[Literal], ValueTest]:
    def build(literal: Literal) -> ValueTest:
        number = to_decimal(literal.text)  # the parser guarantees a numeric literal
        return lambda v: is_number(v) and compare(to_decimal(v), number)

    return build


def _text(test: Callable[[str, str], bool]) -> Callable[[Literal], ValueTest]:
    def build(literal: Literal) -> ValueTest:
        folded = fold(literal.text)
        return lambda v: test(fold(v), folded)

    return build


def _matches_words(literal: Literal) -> ValueTest:
    wanted = words(literal.text)
    return lambda v: contains_words(v, wanted)


def _matches_regex(literal: Literal) -> ValueTest:
    pattern = compile_java_regex(literal.text)
    return lambda v: pattern.fullmatch(v) is not None


# op -> (value test factory, negated). A negated operator is true when the key is present and
# no value passes the test (§4.4 `!=`); every other operator is true when any value passes.
VALUE_TESTS: dict[str, tuple[Callable[[Literal], ValueTest], bool]] = {
    "==": (_equals, False),
    "!=": (_equals, True),
    "<": (_relational(operator.lt), False),
    ">": (_relational(operator.gt), False),
    "<=": (_relational(operator.le), False),
    ">=": (_relational(operator.ge), False),
    "contains": (_text(lambda v, lit: lit in v), False),
    "startswith": (_text(lambda v, lit: v.startswith(lit)), False),
    "endswith": (_text(lambda v, lit: v.endswith(lit)), False),
    "matcheswords": (_matches_words, False),
    "matchesregex": (_matches_regex, False),
}


@lru_cache(maxsize=65536)
def _value_test(op: str, literal: Literal) -> ValueTest:
    return VALUE_TESTS[op][0](literal)


def _comparison(node: Comparison, signals: Mapping[str, Sequence[str]]) -> bool:
    values = signals.get(node.key)
    if not values:
        return False  # an absent key makes every comparison false, `!=` included
    test = _value_test(node.op, node.literal)
    if VALUE_TESTS[node.op][1]:
        return not any(test(v) for v in values)
    return any(test(v) for v in values)


_NODES: dict[type, Callable[[Rule, Mapping[str, Sequence[str]]], bool]] = {
    Comparison: _comparison,  # type: ignore[dict-item]
    And: lambda n, s: all(evaluate(operand, s) for operand in chain(n)),
    Or: lambda n, s: any(evaluate(operand, s) for operand in chain(n)),
    Not: lambda n, s: not evaluate(n.operand, s),  # type: ignore[union-attr]
}


def evaluate(rule: Rule, signals: Mapping[str, Sequence[str]]) -> bool:
    """Does one line's signal multimap (keys already lower case, D-24) realize the rule?"""
    return _NODES[type(rule)](rule, signals)
