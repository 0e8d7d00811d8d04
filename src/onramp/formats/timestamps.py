"""The two forms of a UTC instant Onramp uses: naive in the store, aware at the edges.

The store's TIMESTAMP columns hold naive UTC; receipts, mail headers and the API speak
aware UTC (ISO 8601 with ``Z``). Naive input is always taken as UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone


def aware_utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def iso_z(ts: datetime) -> str:
    """``2026-11-23T10:00:00Z`` (SPEC §11.1, §11.3)."""
    return aware_utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")
