"""DuckDB SQL generator for trait rules (SPEC §4.4, D-44).

``to_duckdb_sql(rule, signals)`` writes one boolean SQL expression — never NULL — over
``signals``, a ``STRUCT(k VARCHAR, v VARCHAR)[]`` of the line's signals (``k`` lower case).
Each operator is a template over one value ``{v}`` in ``VALUE_TEMPLATES``; a Spark generator
is a sibling module with its own table. The SQL twins of ``values.py`` live here too and are
held to the Python definitions by property tests.
"""

from __future__ import annotations

from collections.abc import Callable

from onramp.rules.ast import And, Comparison, Literal, Not, Or, Rule, chain
from onramp.rules.regex import java_to_re2
from onramp.rules.values import (
    SORT_KEY_LENGTH_DIGITS,
    WORD_RE2,
    canonical_decimal,
    fold,
    number_sort_key,
    words,
)

NUMBER_RE2 = r"-?[0-9]+(\.[0-9]+)?"


def sql_string(text: str) -> str:
    """A SQL string literal (DuckDB does not treat backslashes specially in '...')."""
    return "'" + text.replace("'", "''") + "'"


# -- SQL twins of values.py ------------------------------------------------------------------


def sql_is_number(v: str) -> str:
    return f"regexp_full_match({v}, {sql_string(NUMBER_RE2)})"


def sql_canonical_decimal(v: str) -> str:
    """canonical_decimal() in SQL; meaningful only where sql_is_number(v) holds."""
    no_leading = f"regexp_replace({v}, '^(-?)0*([0-9])', '\\1\\2')"
    no_trailing = f"regexp_replace({no_leading}, '(\\.[0-9]*[1-9])0+$|\\.0+$', '\\1')"
    return f"regexp_replace({no_trailing}, '^-0$', '0')"


def sql_number_sort_key(v: str) -> str:
    """number_sort_key() in SQL; meaningful only where sql_is_number(v) holds."""
    c = sql_canonical_decimal(v)
    width = SORT_KEY_LENGTH_DIGITS
    negative_digits = f"lpad(CAST(length(split_part({c}, '.', 1)) - 1 AS VARCHAR), {width}, '0') || replace(replace({c}, '-', ''), '.', '')"
    positive_digits = f"lpad(CAST(length(split_part({c}, '.', 1)) AS VARCHAR), {width}, '0') || replace({c}, '.', '')"
    return (
        f"CASE WHEN {c} = '0' THEN '1' "
        f"WHEN starts_with({c}, '-') THEN '0' || translate({negative_digits}, '0123456789', '9876543210') || ':' "
        f"ELSE '2' || {positive_digits} END"
    )


def sql_words(v: str) -> str:
    """The words of v (matcheswords) joined and framed by single spaces: ' w1 w2 '."""
    return f"(' ' || array_to_string(regexp_extract_all(lower({v}), {sql_string(WORD_RE2)}), ' ') || ' ')"


# -- operator templates ------------------------------------------------------------------------


def _equals(v: str, literal: Literal) -> str:
    text_equal = f"lower({v}) = {sql_string(fold(literal.text))}"
    if literal.kind != "number":
        return text_equal
    numeric_equal = f"{sql_canonical_decimal(v)} = {sql_string(canonical_decimal(literal.text))}"
    return f"CASE WHEN {sql_is_number(v)} THEN {numeric_equal} ELSE {text_equal} END"


def _relational(sql_op: str) -> Callable[[str, Literal], str]:
    def template(v: str, literal: Literal) -> str:
        return f"({sql_is_number(v)} AND {sql_number_sort_key(v)} {sql_op} {sql_string(number_sort_key(literal.text))})"

    return template


def _text(function: str) -> Callable[[str, Literal], str]:
    return lambda v, literal: f"{function}(lower({v}), {sql_string(fold(literal.text))})"


def _matches_words(v: str, literal: Literal) -> str:
    return f"contains({sql_words(v)}, {sql_string(' ' + ' '.join(words(literal.text)) + ' ')})"


def _matches_regex(v: str, literal: Literal) -> str:
    return f"regexp_full_match({v}, {sql_string(java_to_re2(literal.text))})"


# op -> (template over one value, negated); see evaluate.VALUE_TESTS for the semantics.
VALUE_TEMPLATES: dict[str, tuple[Callable[[str, Literal], str], bool]] = {
    "==": (_equals, False),
    "!=": (_equals, True),
    "<": (_relational("<"), False),
    ">": (_relational(">"), False),
    "<=": (_relational("<="), False),
    ">=": (_relational(">="), False),
    "contains": (_text("contains"), False),
    "startswith": (_text("starts_with"), False),
    "endswith": (_text("ends_with"), False),
    "matcheswords": (_matches_words, False),
    "matchesregex": (_matches_regex, False),
}

_SIGNAL = "sig"  # lambda parameter: one signal of the list


def _any_signal(signals: str, key: str, predicate: str) -> str:
    return f"coalesce(list_bool_or(list_transform({signals}, lambda {_SIGNAL}: {_SIGNAL}.k = {sql_string(key)} AND ({predicate}))), false)"


def _comparison(node: Comparison, signals: str) -> str:
    template, negated = VALUE_TEMPLATES[node.op]
    test = _any_signal(signals, node.key, template(f"{_SIGNAL}.v", node.literal))
    if negated:
        return f"({_any_signal(signals, node.key, 'true')} AND NOT {test})"
    return test


_NODES: dict[type, Callable[[Rule, str], str]] = {
    Comparison: _comparison,  # type: ignore[dict-item]
    And: lambda n, s: "(" + " AND ".join(to_duckdb_sql(operand, s) for operand in chain(n)) + ")",
    Or: lambda n, s: "(" + " OR ".join(to_duckdb_sql(operand, s) for operand in chain(n)) + ")",
    Not: lambda n, s: f"(NOT {to_duckdb_sql(n.operand, s)})",  # type: ignore[union-attr]
}


def to_duckdb_sql(rule: Rule, signals: str = "signals") -> str:
    """A SQL boolean (never NULL) telling whether the signal list ``signals`` realizes ``rule``.

    ``signals`` is repeated once per comparison, so pass a column or ``$name`` parameter, not a
    subquery. Every comparison is coalesced to false, so NOT and AND/OR never see NULL.
    """
    return _NODES[type(rule)](rule, signals)
