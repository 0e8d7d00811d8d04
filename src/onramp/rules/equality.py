"""Equality rules as join keys (SPEC §4.4 `==`, §4.6).

Most rules are ``key == "value"`` or ANDs/ORs of those. Instead of evaluating each such rule
per line, the engine turns every signal value into *equality tokens* and every rule into a DNF
of (key, token) atoms, and matches them with a join. The contract, for ``k == lit``::

    a value v satisfies it  <=>  eq_token_for_literal(lit) in eq_tokens_for_value(v)
"""

from __future__ import annotations

from onramp.rules.ast import And, Comparison, Literal, Or, Rule, chain
from onramp.rules.compile_duckdb import sql_canonical_decimal, sql_is_number
from onramp.rules.values import canonical_decimal, fold, is_number

# Distributing AND over OR can grow a rule exponentially; past this many atoms in all terms
# the rule goes to the general evaluator instead. A plain OR of values stays one atom each.
MAX_DNF_ATOMS = 10_000

Atom = tuple[str, str]  # (key, token)


def eq_token_for_literal(literal: Literal) -> str:
    """``n:<canonical>`` for a number literal (numeric equality), else ``s:<lower case>``.

    A number literal only ever equals numeric values: a non-numeric value never has the same
    text as a number, so the text branch of §4.4 cannot match and needs no token.
    """
    if literal.kind == "number":
        return "n:" + canonical_decimal(literal.text)
    return "s:" + fold(literal.text)


def eq_tokens_for_value(value: str) -> list[str]:
    """The text token of a value, plus its numeric token when it parses as a number."""
    tokens = ["s:" + fold(value)]
    if is_number(value):
        tokens.append("n:" + canonical_decimal(value))
    return tokens


def sql_eq_tokens(value_sql: str) -> str:
    """eq_tokens_for_value() as a DuckDB ``VARCHAR[]`` expression (``value_sql`` is repeated)."""
    text = f"'s:' || lower({value_sql})"
    return f"CASE WHEN {sql_is_number(value_sql)} THEN [{text}, 'n:' || {sql_canonical_decimal(value_sql)}] ELSE [{text}] END"


def _dnf(node: Rule) -> list[tuple[Atom, ...]] | None:
    if isinstance(node, Comparison):
        return [((node.key, eq_token_for_literal(node.literal)),)] if node.op == "==" else None
    if isinstance(node, (And, Or)):
        terms: list[tuple[Atom, ...]] = [] if isinstance(node, Or) else [()]
        for operand in chain(node):
            part = _dnf(operand)
            if part is None:
                return None
            terms = terms + part if isinstance(node, Or) else [a + b for a in terms for b in part]
            if sum(len(term) for term in terms) > MAX_DNF_ATOMS:
                return None
        return terms
    return None  # NOT, and every other operator, need the general evaluator


def equality_dnf(rule: Rule) -> list[list[tuple[str, str]]] | None:
    """The rule as an OR of ANDs of positive ``==`` atoms, or None when it is not one.

    ANDs over ORs are distributed (``(a == 1 OR b == 1) AND c == 2`` gives two terms) up to
    MAX_DNF_ATOMS atoms in all. Atoms within a term and repeated terms are de-duplicated, in order.
    """
    terms = _dnf(rule)
    if terms is None:
        return None
    out: list[list[tuple[str, str]]] = []
    seen: set[frozenset[Atom]] = set()
    for term in terms:
        atoms = list(dict.fromkeys(term))
        if frozenset(atoms) not in seen:
            seen.add(frozenset(atoms))
            out.append(atoms)
    return out
