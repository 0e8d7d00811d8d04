r"""Java regular expressions for ``matchesregex`` (SPEC §4.4), translated for RE2 and Python.

A small parser reads the Java syntax into a tree whose character sets are explicit code-point
ranges; two emitters write the tree for RE2 (DuckDB's ``regexp_full_match``) and for Python's
``re``. Because every class — ``.``, ``\d``, ``\s``, ``[a-z]`` under ``(?i)`` — is spelled out
as ranges with Java's (ASCII) meaning, the engines agree on what matches. Constructs RE2 cannot
run (lookaround, backreferences, possessive quantifiers, atomic groups) and Java features
we do not translate are rejected with the column of the offending construct.

Known difference from Java, by design: ``$`` and ``\Z`` match only at the very end of the
value (Java also matches before a final line terminator; inbound values never contain CR/LF).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from onramp.errors import RuleSyntaxError
from onramp.rules.charsets import (
    ANY,
    CATEGORIES,
    CLASS_ESCAPES,
    LINE_TERMINATORS,
    MAX_CODE_POINT,
    POSIX_CLASSES,
    SURROGATES,
    CharSet,
    ascii_case_closure,
    category,
    chars,
    complement,
    intersect,
    normalize,
    union,
)

MAX_REPEAT = 1000  # RE2: each bound and the product of nested bounds (RE2's RepetitionWalker)
MAX_PROGRAM_COST = 250_000  # estimated RE2 instructions; DuckDB's RE2 gives up near 700,000
MAX_NESTING = 100


CHAR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\x07", "e": "\x1b"}
ANCHOR_ESCAPES = {"A": "start", "z": "end", "Z": "end", "b": "word", "B": "not_word"}
REJECTED_ESCAPES = {
    "G": "\\G (end of previous match) is not supported",
    "R": "\\R (linebreak matcher) is not supported; use [\\n\\r]",
    "X": "\\X (grapheme cluster) is not supported",
    "N": "\\N{name} is not supported; write the character or \\x{...}",
    "k": "backreferences (\\k<name>) are not supported by RE2",
}
# Inline flags: the ones we translate, and why the others are refused.
SUPPORTED_FLAGS = frozenset("isd")
REJECTED_FLAGS = {
    "m": "(?m) multiline mode is not supported; values are single lines",
    "x": "(?x) comments mode is not supported; remove the flag, the spaces and the comments",
    "u": "(?u) Unicode case folding is not supported; (?i) folds ASCII letters, as Java does by default",
    "U": "(?U) Unicode character classes are not supported; use \\p{L} or \\p{N}",
}



# ---------------------------------------------------------------------------------------------
# Tree


@dataclass(frozen=True)
class Chars:
    ranges: CharSet


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    options: tuple


@dataclass(frozen=True)
class Repeat:
    item: object
    min: int
    max: int | None


@dataclass(frozen=True)
class Anchor:
    kind: str  # start | end | word | not_word


# ---------------------------------------------------------------------------------------------
# Parser


class _Parser:
    def __init__(self, pattern: str):
        self.p = pattern
        self.i = 0
        self.flags: frozenset[str] = frozenset()
        self.depth = 0

    def error(self, message: str, at: int | None = None, hint: str | None = None) -> RuleSyntaxError:
        column = (self.i if at is None else at) + 1
        return RuleSyntaxError(message, text=self.p, column=column, hint=hint)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def parse(self) -> object:
        node = self.alternation()
        if self.i < len(self.p):  # only an unmatched ')' stops the top-level alternation
            raise self.error("unmatched ')'", hint="remove it or add the matching '('")
        return node

    def alternation(self) -> object:
        options = [self.sequence()]
        while self.peek() == "|":
            self.i += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def sequence(self) -> object:
        items = []
        while self.i < len(self.p) and self.peek() not in "|)":
            start = self.i
            if self.p.startswith("\\Q", self.i):
                # \Q...\E quotes characters one by one: a quantifier applies to the last one.
                quoted = self.quoted()
                items.extend(quoted[:-1])
                atom = quoted[-1] if quoted else None
            else:
                atom = self.atom()
            if atom is not None:
                items.append(self.quantified(atom, start))
        return items[0] if len(items) == 1 else Seq(tuple(items))

    def quantified(self, atom: object, atom_start: int) -> object:
        at = self.i
        ch = self.peek()
        if ch == "*":
            lo, hi = 0, None
            self.i += 1
        elif ch == "+":
            lo, hi = 1, None
            self.i += 1
        elif ch == "?":
            lo, hi = 0, 1
            self.i += 1
        elif ch == "{":
            lo, hi = self.braces()
        else:
            return atom
        if isinstance(atom, Anchor):
            raise self.error("nothing to repeat: an anchor cannot take a quantifier", at=at)
        if self.peek() == "+":
            raise self.error(
                "possessive quantifiers are not supported by RE2", hint="drop the trailing '+' (a greedy quantifier matches the same values here)"
            )
        if self.peek() == "?":
            self.i += 1  # lazy: the same values match in a full match
        if self.peek() and self.peek() in "*+?{":
            raise self.error("nothing to repeat: a quantifier cannot follow a quantifier", hint="wrap the repeated part in (?:...) first")
        node = Repeat(atom, lo, hi)
        _check_nested_repeats(node, self, at)
        return node

    def braces(self) -> tuple[int, int | None]:
        at = self.i
        m = re.compile(r"\{([0-9]+)(,([0-9]*))?\}").match(self.p, self.i)
        if m is None:
            raise self.error("'{' does not start a repetition {n}, {n,} or {n,m}", hint="write \\{ for a literal brace")
        self.i = m.end()
        lo = int(m.group(1))
        hi: int | None = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
        if hi is not None and hi < lo:
            raise self.error(f"repetition {m.group(0)} has its maximum below its minimum", at=at)
        if lo > MAX_REPEAT or (hi is not None and hi > MAX_REPEAT):
            raise self.error(f"repetition {m.group(0)} exceeds RE2's limit of {MAX_REPEAT}", at=at)
        return lo, hi

    def atom(self) -> object | None:
        ch = self.p[self.i]
        if ch == "(":
            return self.group()
        if ch == "[":
            return Chars(self.char_class())
        if ch == "\\":
            return self.escape()
        if ch in "*+?":
            raise self.error(f"nothing to repeat before {ch!r}", hint=f"write \\{ch} for a literal {ch!r}")
        if ch == "{":
            raise self.error("nothing to repeat before '{'", hint="write \\{ for a literal brace")
        self.i += 1
        if ch == ".":
            if "s" in self.flags:
                return Chars(ANY)
            return Chars(complement(chars("\n") if "d" in self.flags else LINE_TERMINATORS))
        if ch == "^":
            return Anchor("start")
        if ch == "$":
            return Anchor("end")
        return self.literal(ord(ch))

    def quoted(self) -> list[Chars]:
        self.i += 2
        end = self.p.find("\\E", self.i)
        text = self.p[self.i :] if end < 0 else self.p[self.i : end]
        self.i = len(self.p) if end < 0 else end + 2
        return [self.literal(ord(c)) for c in text]

    def literal(self, cp: int) -> Chars:
        ranges = ((cp, cp),)
        return Chars(ascii_case_closure(ranges) if "i" in self.flags else ranges)

    def group(self) -> object | None:
        start = self.i
        self.i += 1
        saved = self.flags
        if self.peek() == "?":
            self.i += 1
            ch = self.peek()
            if ch == ":":
                self.i += 1
            elif ch in ("=", "!") or (ch == "<" and self.peek(1) in ("=", "!")):
                raise self.error("lookaround assertions are not supported by RE2", at=start, hint="rewrite the pattern without (?=, (?!, (?<= or (?<!")
            elif ch == ">":
                raise self.error("atomic groups (?>...) are not supported by RE2", at=start, hint="use a non-capturing group (?:...)")
            elif ch == "<":
                m = re.compile(r"<[A-Za-z][A-Za-z0-9]*>").match(self.p, self.i)
                if m is None:
                    raise self.error("malformed named group", at=start, hint="write (?<name>...) with a name of letters and digits")
                self.i = m.end()
            else:
                flags = self.inline_flags(start)
                if self.peek() == ")":
                    self.i += 1
                    self.flags = flags  # applies to the rest of the enclosing group, as in Java
                    return None
                self.i += 1  # ':'
                self.flags = flags
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"groups nested more than {MAX_NESTING} deep", at=start)
        node = self.alternation()
        if self.peek() != ")":
            raise self.error("missing ')'", hint=f"close the group opened at column {start + 1}")
        self.i += 1
        self.depth -= 1
        self.flags = saved
        return node

    def inline_flags(self, start: int) -> frozenset[str]:
        m = re.compile(r"([A-Za-z]*)(?:-([A-Za-z]*))?([:)])").match(self.p, self.i)
        if m is None:
            raise self.error("unknown group syntax after '(?'", at=start, hint="use (?:...), (?<name>...) or inline flags like (?i)")
        on, off = m.group(1), m.group(2) or ""
        for offset, flag in enumerate(on + off):
            at = self.i + offset + (1 if offset >= len(on) else 0)
            if flag in REJECTED_FLAGS:
                raise self.error(f"inline flag {flag!r} is not supported", at=at, hint=REJECTED_FLAGS[flag])
            if flag not in SUPPORTED_FLAGS:
                raise self.error(f"unknown inline flag {flag!r}", at=at, hint="supported flags are i (ASCII case-insensitive), s (dot matches all) and d")
        self.i = m.end() - 1
        return (self.flags | frozenset(on)) - frozenset(off)

    # -- escapes ---------------------------------------------------------------------------

    def escape(self, in_class: bool = False) -> object:
        """After a backslash: a Chars or an Anchor; in a class, a Chars or a code point."""
        at = self.i
        self.i += 1
        if self.i >= len(self.p):
            raise self.error("the pattern ends with a backslash", at=at, hint="write \\\\ for a literal backslash")
        ch = self.p[self.i]
        self.i += 1
        if ch in CLASS_ESCAPES:
            return Chars(CLASS_ESCAPES[ch])
        if ch in "pP":
            ranges = self.property_class(at)
            return Chars(complement(ranges) if ch == "P" else ranges)
        if ch in CHAR_ESCAPES:
            return self.code_point(ord(CHAR_ESCAPES[ch]), in_class)
        if ch == "0":
            m = re.compile(r"[0-3][0-7]{2}|[0-7]{1,2}").match(self.p, self.i)
            if m is None:
                raise self.error("\\0 must be followed by an octal number", at=at)
            self.i = m.end()
            return self.code_point(int(m.group(0), 8), in_class)
        if ch == "x":
            m = re.compile(r"\{([0-9A-Fa-f]{1,6})\}|[0-9A-Fa-f]{2}").match(self.p, self.i)
            if m is None:
                raise self.error("\\x must be followed by two hex digits or {hex}", at=at)
            self.i = m.end()
            return self.code_point(int(m.group(1) or m.group(0), 16), in_class, at)
        if ch == "u":
            return self.code_point(self.utf16_escape(at), in_class, at)
        if ch == "c":
            if self.i >= len(self.p):
                raise self.error("\\c must be followed by a character", at=at)
            self.i += 1
            return self.code_point(ord(self.p[self.i - 1]) ^ 64, in_class)
        if ch == "Q":  # outside classes, sequence() reads \Q...\E before it gets here
            raise self.error("\\Q...\\E inside a character class is not supported", at=at, hint="escape the characters one by one")
        if ch in ANCHOR_ESCAPES:
            if in_class:
                raise self.error(f"\\{ch} is not allowed in a character class", at=at)
            if ch == "b" and self.peek() == "{":
                raise self.error("\\b{...} boundaries are not supported", at=at)
            return Anchor(ANCHOR_ESCAPES[ch])
        if ch.isdigit():
            raise self.error("backreferences are not supported by RE2", at=at, hint="rewrite the pattern without \\1, \\2, ...")
        if ch in REJECTED_ESCAPES:
            raise self.error(REJECTED_ESCAPES[ch], at=at)
        if ch.isascii() and ch.isalpha():
            raise self.error(f"unknown escape \\{ch}", at=at, hint=f"write {ch} without the backslash, or \\\\ for a backslash")
        return self.code_point(ord(ch), in_class)

    def code_point(self, cp: int, in_class: bool, at: int | None = None) -> object:
        if cp > MAX_CODE_POINT or SURROGATES[0] <= cp <= SURROGATES[1]:
            raise self.error(f"U+{cp:X} is not a valid character", at=at)
        return cp if in_class else self.literal(cp)

    def utf16_escape(self, at: int) -> int:
        m = re.compile(r"[0-9A-Fa-f]{4}").match(self.p, self.i)
        if m is None:
            raise self.error("\\u must be followed by four hex digits", at=at)
        self.i = m.end()
        cp = int(m.group(0), 16)
        if 0xD800 <= cp <= 0xDBFF:  # Java joins an escaped surrogate pair into one character
            low = re.compile(r"\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE).match(self.p, self.i)
            if low is not None:
                self.i = low.end()
                return 0x10000 + ((cp - 0xD800) << 10) + (int(low.group(1), 16) - 0xDC00)
        return cp

    def property_class(self, at: int) -> CharSet:
        if self.peek() == "{":
            end = self.p.find("}", self.i)
            if end < 0:
                raise self.error("unterminated \\p{...}", at=at)
            name = self.p[self.i + 1 : end]
            self.i = end + 1
        else:
            name = self.peek()
            self.i += 1
        if name in POSIX_CLASSES:
            return POSIX_CLASSES[name]
        bare = name[2:] if name.startswith("Is") else name
        if bare in CATEGORIES:
            return category(bare)
        raise self.error(
            f"unsupported property class \\p{{{name}}}",
            at=at,
            hint="use a POSIX class such as \\p{Alpha} or a general category such as \\p{L}",
        )

    # -- character classes -----------------------------------------------------------------

    def char_class(self) -> CharSet:
        start = self.i
        self.i += 1
        negated = self.peek() == "^"
        if negated:
            self.i += 1
        operands: list[CharSet] = []
        current: list[CharSet] = []
        nested = False
        first = True
        while True:
            if self.i >= len(self.p):
                raise self.error("unterminated character class", at=start, hint="close it with ']' (write \\] for a literal bracket)")
            ch = self.p[self.i]
            if ch == "]" and not first:
                self.i += 1
                break
            first = False
            if ch == "[":
                nested = True
                current.append(self.char_class())
            elif self.p.startswith("&&", self.i):
                if not current:
                    raise self.error("'&&' needs a class on both sides", hint="write [a-z&&[^aeiou]]")
                nested = True
                self.i += 2
                operands.append(union(*current))
                current = []
            else:
                current.append(self.class_item())
        if operands and not current:
            raise self.error("'&&' needs a class on both sides", at=self.i - 1, hint="write [a-z&&[^aeiou]]")
        if negated and nested:
            raise self.error(
                "a negated class with nested classes or && is not supported (Java versions disagree on its meaning)",
                at=start,
                hint="write the complement explicitly, e.g. [^abc] instead of [^a[bc]]",
            )
        result = union(*current)
        for operand in operands:
            result = intersect(result, operand)
        return complement(result) if negated else result

    def class_item(self) -> CharSet:
        at = self.i
        lo = self.class_atom()
        if isinstance(lo, tuple):  # a class escape such as \d; a following '-' is literal
            return lo
        if self.peek() == "-" and self.peek(1) not in ("]", ""):
            if self.peek(1) == "[" or self.p.startswith("&&", self.i + 1):
                return self.case(((lo, lo),))
            self.i += 1
            hi = self.class_atom()
            if isinstance(hi, tuple):
                raise self.error("a range must end in a single character", at=at, hint="write \\- for a literal dash")
            if hi < lo:
                raise self.error(f"range {chr(lo)}-{chr(hi)} is out of order", at=at)
            return self.case(((lo, hi),))
        return self.case(((lo, lo),))

    def class_atom(self) -> int | CharSet:
        ch = self.p[self.i]
        if ch == "\\":
            at = self.i
            item = self.escape(in_class=True)
            if isinstance(item, Chars):
                return item.ranges
            if isinstance(item, int):
                return item
            raise self.error("this escape is not allowed in a character class", at=at)
        self.i += 1
        return ord(ch)

    def case(self, ranges: CharSet) -> CharSet:
        return ascii_case_closure(ranges) if "i" in self.flags else normalize(ranges)


def _check_nested_repeats(node: Repeat, parser: _Parser, at: int) -> None:
    """RE2 divides a budget of 1000 by each nested {n,m} bound and refuses when it reaches 0."""

    def budget(n: object, arg: int) -> int:
        if isinstance(n, Repeat):
            if not _is_simple_quantifier(n):
                m = n.max if n.max is not None else n.min
                if m > 0:
                    arg //= m
            return budget(n.item, arg)
        children = n.items if isinstance(n, Seq) else n.options if isinstance(n, Alt) else ()
        return min((budget(c, arg) for c in children), default=arg)

    if budget(node, MAX_REPEAT) == 0:
        raise parser.error(f"nested repetitions multiply to more than {MAX_REPEAT}, RE2's limit", at=at)


def _is_simple_quantifier(node: Repeat) -> bool:
    return (node.min, node.max) in ((0, None), (1, None), (0, 1))


def _cost(node: object) -> int:
    """A generous estimate of RE2 program size (instructions), to refuse patterns RE2 cannot compile."""
    if isinstance(node, Chars):
        if len(node.ranges) == 1 and node.ranges[0][0] == node.ranges[0][1]:
            return len(chr(node.ranges[0][0]).encode())
        return 2 + 3 * sum(len(chr(hi).encode()) for _, hi in node.ranges)
    if isinstance(node, Seq):
        return sum(_cost(i) for i in node.items) + 1
    if isinstance(node, Alt):
        return sum(_cost(o) + 1 for o in node.options)
    if isinstance(node, Repeat):
        return _cost(node.item) * max(node.max if node.max is not None else node.min + 1, 1) + 2
    return 1


@lru_cache(maxsize=4096)
def parse_java_regex(pattern: str) -> object:
    """The regex tree of a Java pattern; raises RuleSyntaxError (column within ``pattern``)."""
    parser = _Parser(pattern)
    tree = parser.parse()
    if _cost(tree) > MAX_PROGRAM_COST:
        raise RuleSyntaxError(
            "the regular expression is too large for RE2",
            text=pattern,
            column=1,
            hint="use fewer or smaller repetitions, or smaller character classes",
        )
    return tree


# ---------------------------------------------------------------------------------------------
# Emitters


@dataclass(frozen=True)
class Dialect:
    name: str
    char: object  # (code point) -> escaped text
    empty_class: str
    anchors: dict[str, str]
    prefix: str = ""


def _re2_char(cp: int) -> str:
    return chr(cp) if chr(cp).isascii() and chr(cp).isalnum() else f"\\x{{{cp:X}}}"


def _python_char(cp: int) -> str:
    if chr(cp).isascii() and chr(cp).isalnum():
        return chr(cp)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


RE2 = Dialect(
    "re2",
    _re2_char,
    r"[^\x{0}-\x{10FFFF}]",
    {"start": r"\A", "end": r"\z", "word": r"\b", "not_word": r"\B"},
)
# (?a): \b means an ASCII word boundary, as in RE2 and Java.
PYTHON = Dialect(
    "python",
    _python_char,
    r"[^\x00-\U0010ffff]",
    {"start": r"\A", "end": r"\Z", "word": r"\b", "not_word": r"\B"},
    prefix="(?a)",
)


def _emit(node: object, d: Dialect) -> str:
    if isinstance(node, Chars):
        r = node.ranges
        if not r:
            return d.empty_class
        if len(r) == 1 and r[0][0] == r[0][1]:
            return d.char(r[0][0])  # type: ignore[operator]
        parts = (d.char(lo) if lo == hi else f"{d.char(lo)}-{d.char(hi)}" for lo, hi in r)  # type: ignore[operator]
        return "[" + "".join(parts) + "]"
    if isinstance(node, Anchor):
        return d.anchors[node.kind]
    if isinstance(node, Seq):
        if not node.items:
            return "(?:)"
        return "".join(f"(?:{_emit(i, d)})" if isinstance(i, Alt) else _emit(i, d) for i in node.items)
    if isinstance(node, Alt):
        return "|".join(_emit(o, d) for o in node.options)
    if isinstance(node, Repeat):
        if isinstance(node.item, Seq) and not node.item.items:
            return "(?:)"
        inner = _emit(node.item, d)
        if not isinstance(node.item, Chars):
            inner = f"(?:{inner})"
        lo, hi = node.min, node.max
        quantifier = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((lo, hi))
        if quantifier is None:
            quantifier = f"{{{lo}}}" if hi == lo else f"{{{lo},}}" if hi is None else f"{{{lo},{hi}}}"
        return inner + quantifier
    raise TypeError(node)


def java_to_re2(pattern: str) -> str:
    """The RE2 spelling of a Java pattern, for a full match (``regexp_full_match``)."""
    return _emit(parse_java_regex(pattern), RE2)


def java_to_python(pattern: str) -> str:
    """The Python ``re`` spelling of a Java pattern, for ``re.fullmatch``."""
    return PYTHON.prefix + _emit(parse_java_regex(pattern), PYTHON)


@lru_cache(maxsize=4096)
def compile_java_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(java_to_python(pattern))
