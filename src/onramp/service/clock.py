"""Injected time. ``ONRAMP_NOW`` (ISO 8601, UTC) pins the clock for tests and replays."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone

from onramp.formats.timestamps import naive_utc

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Naive UTC now (the store keeps naive UTC timestamps)."""
    pinned = os.environ.get("ONRAMP_NOW")
    if pinned:
        ts = datetime.fromisoformat(pinned.replace("Z", "+00:00"))
        return naive_utc(ts)
    return naive_utc(datetime.now(timezone.utc))
