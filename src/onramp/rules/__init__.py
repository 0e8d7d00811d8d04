"""Trait-rule (SPEC §4.3–§4.6) and segment-expression (§5.1–§5.3) languages.

tokens → parser → one typed tree (ast) → generators: canonical text (ast.to_text), the Python
evaluator (evaluate), DuckDB SQL (compile_duckdb) and equality join tokens (equality).
"""

from onramp.rules.ast import And, Comparison, Literal, Not, Or, Rule, rule_keys, to_text
from onramp.rules.compile_duckdb import to_duckdb_sql
from onramp.rules.equality import eq_token_for_literal, eq_tokens_for_value, equality_dnf, sql_eq_tokens
from onramp.rules.evaluate import evaluate
from onramp.rules.parser import parse_trait_rule
from onramp.rules.regex import java_to_re2
from onramp.rules.segments import (
    Frequency,
    SegExpr,
    TraitRef,
    evaluate_segment,
    parse_segment_expression,
    segment_to_text,
    segment_trait_ids,
    validate_segment,
)

__all__ = [
    "And",
    "Comparison",
    "Frequency",
    "Literal",
    "Not",
    "Or",
    "Rule",
    "SegExpr",
    "TraitRef",
    "eq_token_for_literal",
    "eq_tokens_for_value",
    "equality_dnf",
    "evaluate",
    "evaluate_segment",
    "java_to_re2",
    "parse_segment_expression",
    "parse_trait_rule",
    "rule_keys",
    "segment_to_text",
    "segment_trait_ids",
    "sql_eq_tokens",
    "to_duckdb_sql",
    "to_text",
    "validate_segment",
]
