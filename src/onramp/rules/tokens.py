"""Tokens of the trait-rule (SPEC §4.3) and segment-expression (§5.1) languages.

One scanner serves both languages; each declares its lexicon as tables: punctuation,
operators, common operator misspellings with their fix, and which characters make up a word.
Keywords are not decided here: a word is a keyword, key, literal or trait reference depending
on where the parser finds it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from onramp.errors import RuleSyntaxError


class TokenType(enum.Enum):
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    OPERATOR = "operator"
    WORD = "word"
    STRING = "string"
    EOF = "end"


@dataclass(frozen=True)
class Token:
    """``start`` is the 0-based offset of the token in the source text.

    For a STRING, ``value`` is the unescaped content and ``offsets`` holds the source offset of
    each content character, so errors inside a literal (a bad regex) point at the right column.
    """

    type: TokenType
    text: str
    start: int
    value: str = ""
    offsets: tuple[int, ...] = ()

    @property
    def column(self) -> int:
        return self.start + 1

    def describe(self) -> str:
        return "the end of the text" if self.type is TokenType.EOF else repr(self.text)


@dataclass(frozen=True)
class Lexicon:
    what: str  # "rule" or "segment expression", for messages
    punctuation: Mapping[str, TokenType]
    operators: tuple[str, ...]
    misspelled_operators: Mapping[str, str]  # text -> hint
    word_chars: frozenset[str]
    strings: bool

    def operator_at(self, text: str, i: int) -> tuple[str, str | None] | None:
        """The longest operator (or misspelling, with its hint) starting at ``i``."""
        best: tuple[str, str | None] | None = None
        for op in self.operators:
            if text.startswith(op, i) and (best is None or len(op) > len(best[0])):
                best = (op, None)
        for op, hint in self.misspelled_operators.items():
            if text.startswith(op, i) and (best is None or len(op) > len(best[0])):
                best = (op, hint)
        return best


WHITESPACE = frozenset(" \t\r\n")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

RULE_LEXICON = Lexicon(
    what="rule",
    punctuation={"(": TokenType.LPAREN, ")": TokenType.RPAREN},
    operators=("==", "!=", "<=", ">=", "=>", "<", ">"),
    misspelled_operators={
        "=<": "'=<' is not an operator; write <=",
        "=": "compare with == (a single = is not an operator)",
        "!": "write != for 'not equal' (keys may contain only letters, digits, _ and -)",
        "<>": "write != for 'not equal'",
    },
    # A word is a key, a keyword, a named operator, a number or a bareword; the parser decides.
    word_chars=frozenset(_ALNUM + "_-."),
    strings=True,
)

SEGMENT_LEXICON = Lexicon(
    what="segment expression",
    punctuation={"(": TokenType.LPAREN, ")": TokenType.RPAREN, "[": TokenType.LBRACKET, "]": TokenType.RBRACKET, ",": TokenType.COMMA},
    operators=(">=", "<=", "==", "=>"),
    misspelled_operators={
        "=<": "'=<' is not an operator; write <=",
        "=": "compare with ==, >= or <=",
        "<": "FREQUENCY compares with >=, <= or == (write <=)",
        ">": "FREQUENCY compares with >=, <= or == (write >=)",
        "!=": "FREQUENCY compares with >=, <= or ==; negate with NOT",
    },
    word_chars=frozenset(_ALNUM + "_"),
    strings=False,
)


def tokenize(text: str, lexicon: Lexicon) -> list[Token]:
    """Split ``text`` into tokens, ending with an EOF token; raises RuleSyntaxError."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in WHITESPACE:
            i += 1
        elif ch == '"' and lexicon.strings:
            token = _string(text, i)
            tokens.append(token)
            i += len(token.text)
        elif ch in lexicon.word_chars:
            j = i
            while j < n and text[j] in lexicon.word_chars:
                j += 1
            tokens.append(Token(TokenType.WORD, text[i:j], i, text[i:j]))
            i = j
        elif (found := lexicon.operator_at(text, i)) is not None:
            op, hint = found
            if hint is not None:
                raise RuleSyntaxError(f"unknown operator {op!r}", text=text, column=i + 1, hint=hint)
            tokens.append(Token(TokenType.OPERATOR, op, i, op))
            i += len(op)
        elif ch in lexicon.punctuation:
            tokens.append(Token(lexicon.punctuation[ch], ch, i, ch))
            i += 1
        else:
            raise RuleSyntaxError(
                f"unexpected character {ch!r} in {lexicon.what}",
                text=text,
                column=i + 1,
                hint=_unexpected_hint(ch, lexicon),
            )
    tokens.append(Token(TokenType.EOF, "", n))
    return tokens


def _unexpected_hint(ch: str, lexicon: Lexicon) -> str:
    if ch in "\u201c\u201d":
        return 'use straight ASCII quotes "..." (typographic quotes are ordinary characters, D-27)'
    if lexicon.strings:
        return 'put values with spaces or special characters in double quotes: key == "a b"'
    return "a segment expression uses trait references (123T), FREQUENCY(...), AND, OR, NOT and parentheses"


def _string(text: str, start: int) -> Token:
    r"""A quoted literal: ``\"`` is the only escape; any other backslash is an ordinary character."""
    chars: list[str] = []
    offsets: list[int] = []
    i, n = start + 1, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            return Token(TokenType.STRING, text[start : i + 1], start, "".join(chars), tuple(offsets))
        if ch == "\\" and i + 1 < n and text[i + 1] == '"':
            chars.append('"')
            offsets.append(i)
            i += 2
            continue
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise RuleSyntaxError(
                f"control character U+{ord(ch):04X} inside a quoted value",
                text=text,
                column=i + 1,
                hint="quoted values may not contain tabs, line breaks or other control characters",
            )
        chars.append(ch)
        offsets.append(i)
        i += 1
    raise RuleSyntaxError(
        "unterminated quoted value",
        text=text,
        column=start + 1,
        hint='close the value with a double quote; write \\" for a quote inside it',
    )
