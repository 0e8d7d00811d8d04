"""Trait-rule parser (SPEC §4.3): tokens → one typed tree, errors at the column.

The boolean layer (parentheses, NOT, AND, OR, precedence and left association) lives in
``BooleanParser`` and is shared with segment expressions (§5.1); each language supplies its own
``primary``. Literal checks per operator (numbers for relational operators, words for
``matcheswords``, a translatable regex for ``matchesregex``) are a table.
"""

from __future__ import annotations

from collections.abc import Callable

from onramp.errors import RuleSyntaxError
from onramp.rules.ast import (
    BAREWORD_RE,
    BINARY_OPERATORS,
    KEY_RE,
    KEYWORDS,
    NAMED_OPERATORS,
    NUMBER_RE,
    OPERATOR_ALIASES,
    UNARY_OPERATORS,
    Comparison,
    Literal,
    Rule,
    rule_keys,
    to_text,
)
from onramp.rules.regex import parse_java_regex
from onramp.rules.tokens import RULE_LEXICON, Token, TokenType, tokenize
from onramp.rules.values import words

__all__ = ["BooleanParser", "parse_trait_rule", "rule_keys", "to_text"]

MAX_NESTING = 100  # parentheses and NOTs; deeper text is refused instead of exhausting the stack
_OPERATOR_LIST = "== != < > <= >= contains matcheswords startswith endswith matchesregex"


class BooleanParser:
    """Precedence climbing over BINARY_OPERATORS / UNARY_OPERATORS; subclasses parse leaves."""

    what = "expression"
    leaf_hint = ""

    def __init__(self, text: str, tokens: list[Token]):
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    # -- token helpers -----------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.type is not TokenType.EOF:
            self.pos += 1
        return token

    def keyword(self, token: Token | None = None) -> str | None:
        token = token or self.token
        if token.type is TokenType.WORD and token.text.upper() in KEYWORDS:
            return token.text.upper()
        return None

    def error(self, message: str, token: Token | None = None, hint: str | None = None, column: int | None = None) -> RuleSyntaxError:
        token = token or self.token
        return RuleSyntaxError(message, text=self.text, column=column or token.column, hint=hint)

    def expect(self, type_: TokenType, what: str, hint: str | None = None) -> Token:
        if self.token.type is not type_:
            raise self.error(f"expected {what}, found {self.token.describe()}", hint=hint)
        return self.advance()

    # -- grammar -----------------------------------------------------------------------------

    def parse(self):
        if self.token.type is TokenType.EOF:
            raise self.error(f"empty {self.what}", hint=self.leaf_hint)
        node = self.expression(1)
        if self.token.type is TokenType.RPAREN:
            raise self.error("unmatched ')'", hint="remove it or add the matching '('")
        if self.token.type is not TokenType.EOF:
            raise self.error(f"expected AND, OR or the end of the {self.what}, found {self.token.describe()}", hint="join conditions with AND or OR")
        return node

    def expression(self, min_precedence: int):
        left = self.unary()
        while (kw := self.keyword()) in BINARY_OPERATORS:
            prec, node_type = BINARY_OPERATORS[kw]
            if prec < min_precedence:
                break
            self.advance()
            left = node_type(left, self.expression(prec + 1))
        return left

    def unary(self):
        kw = self.keyword()
        if kw in UNARY_OPERATORS or self.token.type is TokenType.LPAREN:
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise self.error(f"nested more than {MAX_NESTING} levels deep", hint="remove redundant parentheses or NOTs")
            node = self.nested(kw)
            self.depth -= 1
            return node
        if self.token.type is TokenType.EOF:
            previous = self.tokens[self.pos - 1] if self.pos else None
            after = f" after {previous.text!r}" if previous else ""
            raise self.error(f"the {self.what} ends too early{after}", hint=self.leaf_hint)
        return self.primary()

    def nested(self, kw: str | None):
        if kw in UNARY_OPERATORS:
            self.advance()
            return UNARY_OPERATORS[kw][1](self.unary())
        opening = self.advance()
        node = self.expression(1)
        if self.token.type is not TokenType.RPAREN:
            raise self.error(f"missing ')', found {self.token.describe()}", hint=f"close the '(' opened at column {opening.column}")
        self.advance()
        return node

    def primary(self):  # pragma: no cover - abstract
        raise NotImplementedError


LiteralCheck = Callable[["RuleParser", Token, Literal, str], None]


def _numeric(parser: RuleParser, token: Token, literal: Literal, op: str) -> None:
    if not literal.is_numeric:
        raise parser.error(
            f"{op} compares numbers, but {token.text} is not a number",
            token,
            hint="write a number such as 100 or -2.5, or use == to compare text",
        )


def _has_words(parser: RuleParser, token: Token, literal: Literal, op: str) -> None:
    if not words(literal.text):
        raise parser.error("matcheswords needs at least one word (letters or digits)", token, hint='write e.g. c_title matcheswords "slr camera"')


def _valid_regex(parser: RuleParser, token: Token, literal: Literal, op: str) -> None:
    try:
        parse_java_regex(literal.text)
    except RuleSyntaxError as exc:
        index = exc.column - 1
        offsets = token.offsets or tuple(range(token.start, token.start + len(token.text)))
        column = (offsets[index] if index < len(offsets) else token.start + len(token.text) - 1) + 1
        raise parser.error(f"invalid regular expression: {exc.message}", hint=exc.hint, column=column) from None


LITERAL_CHECKS: dict[str, LiteralCheck] = {
    "<": _numeric,
    ">": _numeric,
    "<=": _numeric,
    ">=": _numeric,
    "matcheswords": _has_words,
    "matchesregex": _valid_regex,
}


class RuleParser(BooleanParser):
    what = "rule"
    leaf_hint = 'a rule is made of comparisons like gender == "female", joined by AND, OR and NOT'

    def primary(self) -> Comparison:
        token = self.token
        if token.type is TokenType.STRING:
            fix = f"write {token.value}" if KEY_RE.fullmatch(token.value) else "keys are letters, digits, _ and -"
            raise self.error("a key cannot be quoted", hint=fix)
        if token.type is not TokenType.WORD:
            raise self.error(f"expected a comparison such as key == \"value\", found {token.describe()}", hint=self.leaf_hint)
        if self.keyword(token):
            raise self.error(f"expected a comparison, found the keyword {token.text.upper()}", hint="AND, OR and NOT cannot be used as keys")
        if not KEY_RE.fullmatch(token.text):
            raise self.error(
                f"invalid key {token.text!r}",
                hint="a key has letters, digits, _ and - only and at least one letter (D-43), e.g. c_price123",
            )
        self.advance()
        op = self.operator(token)
        literal_token = self.token
        literal = self.literal(op)
        if op in LITERAL_CHECKS:
            LITERAL_CHECKS[op](self, literal_token, literal, op)
        return Comparison(token.text.lower(), op, literal)

    def operator(self, key: Token) -> str:
        token = self.token
        if token.type is TokenType.OPERATOR:
            self.advance()
            return OPERATOR_ALIASES.get(token.text, token.text)
        if token.type is TokenType.WORD and token.text.lower() in NAMED_OPERATORS:
            self.advance()
            return token.text.lower()
        raise self.error(f"expected an operator after {key.text!r}, found {token.describe()}", hint=f"use one of {_OPERATOR_LIST}")

    def literal(self, op: str) -> Literal:
        token = self.token
        if token.type is TokenType.STRING:
            self.advance()
            return Literal(token.value, "string")
        if token.type is TokenType.WORD:
            assert BAREWORD_RE.fullmatch(token.text)
            self.advance()
            return Literal(token.text, "number" if NUMBER_RE.fullmatch(token.text) else "bareword")
        raise self.error(f"expected a value after {op!r}, found {token.describe()}", hint='write a number, a word, or a quoted value like "New York"')


def parse_trait_rule(text: str) -> Rule:
    """Parse a trait rule (§4.3); raises RuleSyntaxError with a 1-based column and a fix hint."""
    return RuleParser(text, tokenize(text, RULE_LEXICON)).parse()

