"""The trait-rule tree (SPEC §4.3) and the tables both rule languages share.

One tree, several generators: ``to_text`` (canonical text), ``evaluate`` (Python),
``compile_duckdb`` (SQL) and ``equality`` (join tokens) all read these nodes. The boolean nodes
``And``/``Or``/``Not`` are generic and reused by segment expressions (§5.1).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, Union

N = TypeVar("N")

LiteralKind = typing.Literal["string", "number", "bareword"]

# §4.3 `number`; also what "a value parses as a number" means in §4.4 (ASCII digits only).
NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# D-43: letters, digits, '_' and '-', at least one letter.
KEY_RE = re.compile(r"[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*")
BAREWORD_RE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Literal:
    """``text`` is the unescaped content of a quoted literal, or the number/bareword as written."""

    text: str
    kind: LiteralKind

    @property
    def is_numeric(self) -> bool:
        """True when relational operators can use it: a number, or a quoted number like "1.5"."""
        return self.kind == "number" or (self.kind == "string" and NUMBER_RE.fullmatch(self.text) is not None)


@dataclass(frozen=True)
class Comparison:
    key: str  # lower case (D-24)
    op: str  # one of OPERATORS
    literal: Literal


@dataclass(frozen=True)
class And(Generic[N]):
    left: N
    right: N


@dataclass(frozen=True)
class Or(Generic[N]):
    left: N
    right: N


@dataclass(frozen=True)
class Not(Generic[N]):
    operand: N


Rule = Union[Comparison, "And[Rule]", "Or[Rule]", "Not[Rule]"]


@dataclass(frozen=True)
class Operator:
    name: str
    kind: typing.Literal["equality", "relational", "text"]
    precedence: int  # §4.3: relational binds tighter than equality; informational only
    help: str


OPERATORS: dict[str, Operator] = {
    op.name: op
    for op in (
        Operator("==", "equality", 3, "equal: numerically when both sides are numbers, else case-insensitively"),
        Operator("!=", "equality", 3, "the key is present and none of its values equals the literal"),
        Operator("<", "relational", 4, "numerically less than"),
        Operator(">", "relational", 4, "numerically greater than"),
        Operator("<=", "relational", 4, "numerically less than or equal"),
        Operator(">=", "relational", 4, "numerically greater than or equal (also written =>)"),
        Operator("contains", "text", 4, "contains the literal, case-insensitively"),
        Operator("matcheswords", "text", 4, "contains the literal's words in a row, case-insensitively"),
        Operator("startswith", "text", 4, "starts with the literal, case-insensitively"),
        Operator("endswith", "text", 4, "ends with the literal, case-insensitively"),
        Operator("matchesregex", "text", 4, "matches the Java regular expression completely"),
    )
}
OPERATOR_ALIASES = {"=>": ">="}  # §4.3: the documentation writes => for >=
NAMED_OPERATORS = frozenset(name for name in OPERATORS if name.isalpha())

# Boolean layer shared by trait rules (§4.3) and segment expressions (§5.1): keyword ->
# (precedence, node). Higher binds tighter; same-level operators associate left.
BINARY_OPERATORS: dict[str, tuple[int, type]] = {"OR": (1, Or), "AND": (2, And)}
UNARY_OPERATORS: dict[str, tuple[int, type]] = {"NOT": (3, Not)}
KEYWORDS = frozenset(BINARY_OPERATORS) | frozenset(UNARY_OPERATORS)
_LEAF_PRECEDENCE = 4


_KEYWORD_OF: dict[type, tuple[str, int]] = {
    cls: (keyword, prec) for keyword, (prec, cls) in (*BINARY_OPERATORS.items(), *UNARY_OPERATORS.items())
}


def precedence(node: object) -> int:
    return _KEYWORD_OF.get(type(node), ("", _LEAF_PRECEDENCE))[1]


def chain(node: object) -> list:
    """The operands of a left-deep run of one binary operator, in order.

    ``a OR b OR c`` parses as ``Or(Or(a, b), c)``; generators walk such runs with a loop, so
    a segment OR-ing 5,000 traits does not recurse 5,000 deep.
    """
    kind = type(node)
    operands = []
    while type(node) is kind and isinstance(node, (And, Or)):
        operands.append(node.right)
        node = node.left
    operands.append(node)
    operands.reverse()
    return operands


def render_boolean(node: object, leaf: Callable[[object], str]) -> str:
    """Render the boolean layer with the fewest parentheses that re-parse to the same tree."""
    if isinstance(node, (And, Or)):
        keyword, prec = _KEYWORD_OF[type(node)]
        parts = []
        for i, operand in enumerate(chain(node)):
            text = render_boolean(operand, leaf)
            # The first operand binds looser only when its rank is lower; later ones need ()
            # at equal rank too, because the operators associate left.
            needs_parens = precedence(operand) < prec if i == 0 else precedence(operand) <= prec
            parts.append(f"({text})" if needs_parens else text)
        return f" {keyword} ".join(parts)
    if isinstance(node, Not):
        keyword, prec = _KEYWORD_OF[Not]
        operand = render_boolean(node.operand, leaf)
        return f"{keyword} ({operand})" if precedence(node.operand) < prec else f"{keyword} {operand}"
    return leaf(node)


def walk(node: object):
    """All nodes of a tree, depth first, parents before children (no recursion)."""
    stack = [node]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (And, Or)):
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, Not):
            stack.append(node.operand)


def rule_keys(rule: Rule) -> frozenset[str]:
    """The signal keys a rule reads (§4.6: a signal is "used" when its key occurs in the rule)."""
    return frozenset(node.key for node in walk(rule) if isinstance(node, Comparison))


def literal_text(literal: Literal) -> str:
    if literal.kind != "string":
        return literal.text
    if literal.text.endswith("\\"):
        # `\"` is the only escape, so a quoted value cannot end in a backslash (§4.3).
        raise ValueError(f"a quoted literal cannot end with a backslash: {literal.text!r}")
    return '"' + literal.text.replace('"', '\\"') + '"'


def _comparison_text(node: object) -> str:
    assert isinstance(node, Comparison), node
    return f"{node.key} {node.op} {literal_text(node.literal)}"


def to_text(rule: Rule) -> str:
    """Canonical text: lower-case keys and operators, upper-case keywords, minimal parentheses.

    ``parse_trait_rule(to_text(rule)) == rule`` for every rule the parser can produce.
    """
    return render_boolean(rule, _comparison_text)
