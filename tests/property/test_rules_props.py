"""Property tests for the rule languages: one tree, several generators, the same answers.

(a) to_text round-trips through the parser; (b) DuckDB SQL agrees with the Python evaluator;
(c) the equality DNF agrees with the evaluator; (d) SQL equality tokens agree with Python's;
plus the value twins (numbers, case folding, words) and Java regex translations, Python vs RE2.
"""

from __future__ import annotations

import re
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onramp.errors import RuleSyntaxError
from onramp.rules.ast import NUMBER_RE, And, Comparison, Literal, Not, Or, to_text
from onramp.rules.compile_duckdb import sql_number_sort_key, sql_words, to_duckdb_sql
from onramp.rules.equality import eq_tokens_for_value, equality_dnf, sql_eq_tokens
from onramp.rules.evaluate import evaluate
from onramp.rules.parser import parse_trait_rule
from onramp.rules.regex import java_to_python, java_to_re2
from onramp.rules.segments import Frequency, TraitRef, parse_segment_expression, segment_to_text
from onramp.rules.values import fold, number_sort_key, words

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as connection:
        yield connection


# -- strategies --------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c_x", "ic", "123price", "p-1"])
INTERESTING_NUMBERS = ["0", "-0", "00", "0.0", "1", "1.0", "01", "1.00", "10", "-1", "0.5", "00.50", "-0.5", "9", "10.0",
                       "59767559181262060060278870901087098252", "59767559181262060060278870901087098252.0000001",
                       "99999999999999999999999999999999999999", "100000000000000000000000000000000000000"]


@st.composite
def number_texts(draw):
    if draw(st.booleans()):
        return draw(st.sampled_from(INTERESTING_NUMBERS))
    sign = draw(st.sampled_from(["", "-"]))
    whole = draw(st.from_regex(r"[0-9]{1,40}", fullmatch=True))
    fraction = draw(st.none() | st.from_regex(r"[0-9]{1,12}", fullmatch=True))
    return sign + whole + ("." + fraction if fraction else "")


# Characters that matter: case pairs with special lower-casing, quotes, backslash, separators.
TRICKY = "aAbBzZ019 -_.,\"'\\İiΣσςßéÉ日本“”\u2028\xa0"
free_text = st.text(alphabet=st.sampled_from(TRICKY), max_size=8) | st.text(max_size=6)


def quotable(text: str) -> bool:
    return not text.endswith("\\") and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


string_literals = free_text.filter(quotable).map(lambda t: Literal(t, "string"))
number_literals = number_texts().map(lambda t: Literal(t, "number"))
quoted_number_literals = number_texts().map(lambda t: Literal(t, "string"))
bareword_literals = st.from_regex(r"[A-Za-z0-9_.-]{1,8}", fullmatch=True).filter(lambda t: not NUMBER_RE.fullmatch(t)).map(lambda t: Literal(t, "bareword"))
any_literal = st.one_of(string_literals, number_literals, quoted_number_literals, bareword_literals)

REGEX_ATOMS = ["a", "b", "A", "é", ".", "\\d", "\\w", "\\s", "[a-c]", "[^a]", "[a-z&&[^b]]", "\\p{Alpha}", "\\p{L}", "\\.", "(?i)a", "\\b", "1", "-"]


@st.composite
def java_regexes(draw, depth=2):
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        if depth and draw(st.integers(0, 4)) == 0:
            inner = draw(java_regexes(depth - 1))
            alt = draw(java_regexes(depth - 1)) if draw(st.booleans()) else None
            atom = f"({inner}|{alt})" if alt is not None else f"(?:{inner})"
        else:
            atom = draw(st.sampled_from(REGEX_ATOMS))
        if atom != "\\b" and not atom.startswith("(?i)"):
            atom += draw(st.sampled_from(["", "", "*", "+", "?", "{1,2}", "*?"]))
        parts.append(atom)
    return "".join(parts)


def translatable(pattern: str) -> bool:
    try:
        java_to_re2(pattern)
    except RuleSyntaxError:
        return False
    return True


regex_literals = java_regexes().filter(translatable).map(lambda p: Literal(p, "string"))
word_literals = any_literal.filter(lambda lit: bool(words(lit.text)) and quotable(lit.text))

RELATIONAL = ["<", ">", "<=", ">="]
TEXT_OPS = ["contains", "startswith", "endswith"]


def comparisons():
    return st.one_of(
        st.builds(Comparison, KEYS, st.sampled_from(["==", "!="]), any_literal),
        st.builds(Comparison, KEYS, st.sampled_from(RELATIONAL), number_literals | quoted_number_literals),
        st.builds(Comparison, KEYS, st.sampled_from(TEXT_OPS), any_literal),
        st.builds(Comparison, KEYS, st.just("matcheswords"), word_literals),
        st.builds(Comparison, KEYS, st.just("matchesregex"), regex_literals),
    )


def trees(leaves, max_leaves=6):
    return st.recursive(
        leaves,
        lambda children: st.one_of(st.builds(And, children, children), st.builds(Or, children, children), st.builds(Not, children)),
        max_leaves=max_leaves,
    )


rules = trees(comparisons())
equality_rules = trees(st.builds(Comparison, KEYS, st.just("=="), any_literal), max_leaves=8)


def literals_of(rule) -> list[Literal]:
    if isinstance(rule, Comparison):
        return [rule.literal]
    if isinstance(rule, Not):
        return literals_of(rule.operand)
    return literals_of(rule.left) + literals_of(rule.right)


def related_values(literal: Literal) -> list[str]:
    """Values likely to make comparisons with ``literal`` true, false, and borderline."""
    text = literal.text
    out = [text, text.upper(), text.swapcase(), "x" + text, text + " y", "0" + text, text + "0"]
    if NUMBER_RE.fullmatch(text):
        out += [text + ".0" if "." not in text else text + "00", str(Decimal(text) + 1), str(Decimal(text) - Decimal("0.5"))]
    return [v for v in out if v]


@st.composite
def signal_batches(draw, rule):
    pool = [v for lit in literals_of(rule) for v in related_values(lit)]
    values = st.sampled_from(pool) | number_texts() | free_text.filter(bool) if pool else number_texts() | free_text.filter(bool)
    one = st.dictionaries(KEYS, st.lists(values, max_size=3), max_size=4)
    return draw(st.lists(one, min_size=1, max_size=8))


def signal_list(signals):
    return [{"k": k, "v": v} for k, vs in signals.items() for v in vs]


# -- (a) canonical text round-trips ------------------------------------------------------------


@SETTINGS
@given(rules)
def test_to_text_round_trips(rule):
    assert parse_trait_rule(to_text(rule)) == rule


numeric_rules = trees(st.builds(Comparison, KEYS, st.sampled_from(["==", "!=", *RELATIONAL]), number_literals))


@SETTINGS
@given(numeric_rules)
def test_spacing_and_keyword_case_do_not_matter(rule):
    loose = re.sub(r"\b(AND|OR|NOT)\b", lambda m: m.group(0).lower(), to_text(rule)).replace(" ", "\t ")
    assert parse_trait_rule("  " + loose + "\n") == rule


# -- (b) DuckDB SQL agrees with the Python evaluator ---------------------------------------------


@SETTINGS
@given(st.data())
def test_duckdb_agrees_with_evaluate(con, data):
    rule = data.draw(rules)
    batch = data.draw(signal_batches(rule))
    sql = f"SELECT list_transform($batch, lambda signals: {to_duckdb_sql(rule, 'signals')})"
    got = con.execute(sql, {"batch": [signal_list(s) for s in batch]}).fetchone()[0]
    assert got == [evaluate(rule, s) for s in batch], to_text(rule)


# -- (c) the equality DNF agrees with the evaluator --------------------------------------------


@SETTINGS
@given(st.data())
def test_equality_dnf_agrees_with_evaluate(data):
    rule = data.draw(equality_rules | rules)
    dnf = equality_dnf(rule)
    if isinstance(rule, Comparison) and rule.op == "==":
        assert dnf is not None
    if dnf is None:
        return
    for signals in data.draw(signal_batches(rule)):
        tokens = {k: {t for v in vs for t in eq_tokens_for_value(v)} for k, vs in signals.items()}
        joined = any(all(token in tokens.get(key, ()) for key, token in term) for term in dnf)
        assert joined == evaluate(rule, signals), (to_text(rule), signals)


# -- (d) SQL equality tokens agree with Python's -------------------------------------------------

values = st.one_of(number_texts(), free_text, st.text(max_size=12), st.from_regex(r"-?0*[0-9]{0,3}(\.[0-9]{0,3}0*)?", fullmatch=True))


@SETTINGS
@given(st.lists(values, min_size=1, max_size=20))
def test_sql_eq_tokens_agree(con, batch):
    got = con.execute(f"SELECT list_transform($values, lambda v: {sql_eq_tokens('v')})", {"values": batch}).fetchone()[0]
    assert got == [eq_tokens_for_value(v) for v in batch]


# -- value twins -----------------------------------------------------------------------------


@SETTINGS
@given(st.lists(number_texts(), min_size=2, max_size=20))
def test_number_sort_keys_order_like_decimals_in_python_and_sql(con, numbers):
    keys = [number_sort_key(n) for n in numbers]
    for a, b, ka, kb in zip(numbers, numbers[1:], keys, keys[1:]):
        assert (ka < kb, ka == kb) == (Decimal(a) < Decimal(b), Decimal(a) == Decimal(b))
    sql = con.execute(f"SELECT list_transform($n, lambda v: {sql_number_sort_key('v')})", {"n": numbers}).fetchone()[0]
    assert sql == keys


@SETTINGS
@given(st.lists(st.text(max_size=12) | free_text, min_size=1, max_size=20))
def test_fold_and_words_agree_with_duckdb(con, texts):
    got = con.execute(f"SELECT list_transform($t, lambda v: [lower(v), {sql_words('v')}])", {"t": texts}).fetchone()[0]
    assert got == [[fold(t), " " + " ".join(words(t)) + " "] for t in texts]


@SETTINGS
@given(java_regexes(), st.lists(st.text(alphabet=st.sampled_from("aAbBc1é.- _\n\u2028"), max_size=6), min_size=1, max_size=10))
def test_regex_translations_agree(con, pattern, batch):
    try:
        python, re2 = java_to_python(pattern), java_to_re2(pattern)
    except RuleSyntaxError:
        return
    got = con.execute("SELECT list_transform($v, lambda s: regexp_full_match(s, $p))", {"v": batch, "p": re2}).fetchone()[0]
    assert got == [re.fullmatch(python, v) is not None for v in batch], (pattern, re2)


# -- segments ----------------------------------------------------------------------------------

sids = st.integers(1, 10**9)
segment_leaves = st.one_of(
    st.builds(TraitRef, sids),
    st.builds(
        Frequency,
        st.lists(sids, min_size=1, max_size=4).map(tuple),
        st.none() | st.tuples(st.sampled_from(["<=", ">="]), st.integers(0, 3650)),
        st.sampled_from([">=", "<=", "=="]),
        st.integers(0, 1000),
    ),
)


@SETTINGS
@given(trees(segment_leaves))
def test_segment_text_round_trips(expr):
    assert parse_segment_expression(segment_to_text(expr)) == expr


# -- (d) the per-line pivot (engine path for non-equality rules) agrees with the evaluator ------


@SETTINGS
@given(st.data())
def test_pivot_agrees_with_evaluate(con, data):
    from onramp.rules.compile_pivot import Pivot

    rule = data.draw(rules)
    batch = data.draw(signal_batches(rule))
    pivot = Pivot()
    pivot.add_rule(1, rule)
    rows = [(line, k, v) for line, signals in enumerate(batch) for k, vs in signals.items() for v in vs]
    con.execute("CREATE OR REPLACE TEMP TABLE sigs (line INTEGER, k VARCHAR, v VARCHAR)")
    if rows:
        con.executemany("INSERT INTO sigs VALUES (?, ?, ?)", rows)
    keys = ", ".join(f"'{k}'" for k in pivot.keys)
    (_, expr), = pivot.rules
    got = dict(con.execute(
        f"SELECT line, {expr} FROM (SELECT line, {pivot.aggregates_sql()} FROM sigs WHERE k IN ({keys}) GROUP BY line)"
    ).fetchall())
    for line, signals in enumerate(batch):
        # A line without any of the rule's keys has no pivot row: the engine uses the
        # rule's value on no signals for it (Rulebook.empty_true).
        expected = evaluate(rule, signals)
        assert got.get(line, evaluate(rule, {})) == expected, (to_text(rule), signals)
