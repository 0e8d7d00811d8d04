"""How signal values compare (SPEC §4.4, D-44): numbers, case folding, words.

Every generator (Python evaluator, DuckDB SQL, equality tokens) builds on these definitions,
and ``compile_duckdb`` holds their SQL twins; property tests check that the two agree.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from onramp.rules.ast import NUMBER_RE
from onramp.rules.unicode_tables import ALNUM_RANGES


def is_number(text: str) -> bool:
    """§4.3 `number`: ``-?[0-9]+(\\.[0-9]+)?`` — no '+', no exponent, no spaces, ASCII digits."""
    return NUMBER_RE.fullmatch(text) is not None


def to_decimal(text: str) -> Decimal:
    """Exact value of a number (38-digit platform UUIDs included); never a float."""
    return Decimal(text)


def canonical_decimal(text: str) -> str:
    """One spelling per numeric value: no leading zeros, no trailing fractional zeros, no '-0'.

    ``007`` → ``7``, ``1.500`` → ``1.5``, ``1.0`` → ``1``, ``-0.0`` → ``0``.
    """
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    whole = whole.lstrip("0") or "0"
    fraction = fraction.rstrip("0")
    if whole == "0" and not fraction:
        return "0"
    return ("-" if negative else "") + whole + ("." + fraction if fraction else "")


_NINES = str.maketrans("0123456789", "9876543210")
SORT_KEY_LENGTH_DIGITS = 10


def number_sort_key(text: str) -> str:
    """A string whose byte order is the numeric order of ``text`` (any length, exact).

    Zero is ``1``; a positive number is ``2`` + its integer-part length (10 digits) + its digits;
    a negative number is ``0`` + the nines' complement of that + ``:`` (which sorts after every
    digit, so a longer magnitude with the same prefix sorts first).
    """
    canonical = canonical_decimal(text)
    if canonical == "0":
        return "1"
    whole, _, fraction = canonical.lstrip("-").partition(".")
    digits = f"{len(whole):0{SORT_KEY_LENGTH_DIGITS}d}{whole}{fraction}"
    if canonical.startswith("-"):
        return "0" + digits.translate(_NINES) + ":"
    return "2" + digits


# Python's str.lower() applies two mappings DuckDB's lower() does not: U+0130 (İ) becomes
# "i" + U+0307, and Σ becomes ς at the end of a word. Case-insensitive here means the
# per-character (simple) lower-case mapping, which is what DuckDB does.
_SIMPLE_LOWER_EXCEPTIONS = {"\u0130": "i", "\u03a3": "\u03c3"}


def fold(text: str) -> str:
    """Lower-case ``text`` character by character, exactly like DuckDB's ``lower()``."""
    if "\u0130" in text or "\u03a3" in text:
        return "".join(_SIMPLE_LOWER_EXCEPTIONS.get(ch) or ch.lower() for ch in text)
    return text.lower()


def _python_class(ranges: tuple[tuple[int, int], ...]) -> str:
    def char(cp: int) -> str:
        return f"\\U{cp:08x}"

    return "[" + "".join(char(lo) if lo == hi else f"{char(lo)}-{char(hi)}" for lo, hi in ranges) + "]"


def re2_class(ranges: tuple[tuple[int, int], ...]) -> str:
    def char(cp: int) -> str:
        return f"\\x{{{cp:X}}}"

    return "[" + "".join(char(lo) if lo == hi else f"{char(lo)}-{char(hi)}" for lo, hi in ranges) + "]"


# §4.4 matcheswords: a word is a maximal run of Unicode letters and numbers.
WORD_RE2 = re2_class(ALNUM_RANGES) + "+"


@lru_cache(maxsize=1)
def _word_re() -> re.Pattern[str]:
    return re.compile(_python_class(ALNUM_RANGES) + "+")


def words(text: str) -> list[str]:
    """The case-folded words of ``text``: runs of letters and numbers; everything else splits."""
    return _word_re().findall(fold(text))


def contains_words(value: str, literal_words: list[str]) -> bool:
    """True when ``value``'s words contain ``literal_words`` contiguously (matcheswords)."""
    haystack = words(value)
    n = len(literal_words)
    return any(haystack[i : i + n] == literal_words for i in range(len(haystack) - n + 1))
