"""Character sets as explicit code-point ranges, for the Java regex translation (regex.py).

Every class a pattern can name — ``.``, ``\\d``, ``\\p{Alpha}``, ``[a-z&&[^aeiou]]``, letters under
``(?i)`` — becomes sorted, disjoint ranges with Java's (ASCII) meaning, so RE2 and Python see
exactly the same characters. Surrogates are left out: they never occur in UTF-8 text.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_CODE_POINT = 0x10FFFF
SURROGATES = (0xD800, 0xDFFF)

CharSet = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent inclusive ranges


def normalize(ranges) -> CharSet:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    # Surrogates never occur in UTF-8 text; leaving them out keeps RE2 and Python identical.
    out: list[tuple[int, int]] = []
    for lo, hi in merged:
        if lo < SURROGATES[0] and hi >= SURROGATES[0]:
            out.append((lo, SURROGATES[0] - 1))
            lo = SURROGATES[0]
        if lo <= SURROGATES[1] and hi > SURROGATES[1]:
            lo = SURROGATES[1] + 1
        if not (SURROGATES[0] <= lo and hi <= SURROGATES[1]) and lo <= hi:
            out.append((lo, hi))
    return tuple(out)


def chars(*items: str | tuple[str, str]) -> CharSet:
    return normalize((ord(i[0]), ord(i[1])) if isinstance(i, tuple) else (ord(i), ord(i)) for i in items)


def union(*sets: CharSet) -> CharSet:
    return normalize(r for s in sets for r in s)


def complement(s: CharSet) -> CharSet:
    out, start = [], 0
    for lo, hi in s:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= MAX_CODE_POINT:
        out.append((start, MAX_CODE_POINT))
    return normalize(out)


def intersect(a: CharSet, b: CharSet) -> CharSet:
    return complement(union(complement(a), complement(b)))


def ascii_case_closure(s: CharSet) -> CharSet:
    """Java's default (?i): ASCII letters match their other case; nothing else changes."""
    extra = []
    for lo, hi in s:
        for base, other in ((ord("A"), ord("a")), (ord("a"), ord("A"))):
            a, b = max(lo, base), min(hi, base + 25)
            if a <= b:
                extra.append((a - base + other, b - base + other))
    return union(s, tuple(extra))


ANY: CharSet = complement(())
DIGIT = chars(("0", "9"))
WORD = chars(("a", "z"), ("A", "Z"), ("0", "9"), "_")
SPACE = chars(" ", "\t", "\n", "\x0b", "\f", "\r")  # Java \s (RE2's \s lacks \x0B)
HSPACE = chars(" ", "\t", "\xa0", "\u1680", "\u180e", ("\u2000", "\u200a"), "\u202f", "\u205f", "\u3000")
VSPACE = chars("\n", "\x0b", "\f", "\r", "\x85", "\u2028", "\u2029")
LINE_TERMINATORS = chars("\n", "\r", "\x85", "\u2028", "\u2029")  # what Java's '.' excludes

CLASS_ESCAPES: dict[str, CharSet] = {
    "d": DIGIT,
    "D": complement(DIGIT),
    "w": WORD,
    "W": complement(WORD),
    "s": SPACE,
    "S": complement(SPACE),
    "h": HSPACE,
    "H": complement(HSPACE),
    "v": VSPACE,
    "V": complement(VSPACE),
}
_PUNCT = chars(("!", "/"), (":", "@"), ("[", "`"), ("{", "~"))
POSIX_CLASSES: dict[str, CharSet] = {
    "Lower": chars(("a", "z")),
    "Upper": chars(("A", "Z")),
    "ASCII": chars(("\x00", "\x7f")),
    "Alpha": chars(("a", "z"), ("A", "Z")),
    "Digit": DIGIT,
    "Alnum": chars(("a", "z"), ("A", "Z"), ("0", "9")),
    "Punct": _PUNCT,
    "Graph": chars(("!", "~")),
    "Print": chars((" ", "~")),
    "Blank": chars(" ", "\t"),
    "Cntrl": chars(("\x00", "\x1f"), "\x7f"),
    "XDigit": chars(("0", "9"), ("a", "f"), ("A", "F")),
    "Space": SPACE,
}
@lru_cache(maxsize=None)
def category(name: str) -> CharSet:
    ranges = []
    for cp in range(MAX_CODE_POINT + 1):
        if unicodedata.category(chr(cp)).startswith(name):
            ranges.append((cp, cp))
    return normalize(ranges)


CATEGORIES = frozenset(
    "L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Co Cn".split()
)
