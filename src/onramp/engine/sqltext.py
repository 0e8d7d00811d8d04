"""Small helpers for writing SQL text safely."""

from __future__ import annotations

from collections.abc import Iterable

from onramp.formats.ids import GLOBAL_DEVICE_SOURCES, PLATFORM_UUID_DPID


def lit(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def int_list(values: Iterable[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")"


def ascii_lower(expr: str) -> str:
    """Lower-case A–Z only, like ``formats.lines.ascii_lower`` (DuckDB's lower() maps 'İ', 'K' too)."""
    return f"translate({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


DEVICE_NAMESPACES = int_list([PLATFORM_UUID_DPID, *GLOBAL_DEVICE_SOURCES])


def re_body(pattern: str) -> str:
    """DuckDB's regexp_full_match anchors itself; strip ^…$ so patterns stay shared with Python."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return pattern[1:-1]
    return pattern
