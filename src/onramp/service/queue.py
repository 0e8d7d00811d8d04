"""The fair inbound queue (SPEC §3.10, issue #3): round-robin across partners.

Settled logical files wait in one lane per partner (and environment). ``pop`` serves the
lanes in turn, so a partner that drops a thousand files — or one huge or broken file —
delays another partner by at most one of its own files, never by its whole backlog.
Within a lane, items leave in the order the caller gives (the watcher passes SPEC §3.8.4's
order: ID-sync files first, then by timestamp).

Pure and single-threaded: no clock, no I/O; the watcher owns the locking.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Lane = TypeVar("Lane", bound=Hashable)
Item = TypeVar("Item")


@dataclass(order=True)
class _Entry(Generic[Item]):
    order: Any
    seq: int
    key: Hashable = field(compare=False)
    item: Item = field(compare=False)


class FairQueue(Generic[Lane, Item]):
    """Round-robin over lanes; each key is queued or in progress at most once.

    A key stays *claimed* from ``push`` until ``release``: re-pushing the same logical
    file on every scan of the drop zone is a no-op while it waits or runs.
    """

    def __init__(self) -> None:
        self._lanes: dict[Lane, list[_Entry[Item]]] = {}
        self._turn: deque[Lane] = deque()  # non-empty lanes, next to serve first
        self._claimed: dict[Hashable, Lane] = {}
        self._in_progress: set[Hashable] = set()
        self._seq = itertools.count()

    def push(self, lane: Lane, key: Hashable, item: Item, order: Any = 0) -> bool:
        """Queue ``item`` in ``lane`` unless ``key`` is already queued or in progress."""
        if key in self._claimed:
            return False
        entries = self._lanes.setdefault(lane, [])
        if not entries:
            self._turn.append(lane)  # a lane that was idle joins at the back of the turn
        heapq.heappush(entries, _Entry(order, next(self._seq), key, item))
        self._claimed[key] = lane
        return True

    def pop(self, skip: Container[Lane] = (), accept: Callable[[Item], bool] | None = None) -> tuple[Lane, Hashable, Item] | None:
        """The next item of the lane whose turn it is; the key stays claimed until ``release``.

        Lanes in ``skip`` (the watcher's: those with a file already fetched ahead), and
        lanes whose next item ``accept`` refuses (a big file while big files have no room),
        keep their place in the turn; the first other lane is served.
        """
        lane = next((candidate for candidate in self._turn if candidate not in skip
                     and (accept is None or accept(self._lanes[candidate][0].item))), None)
        if lane is None:
            return None
        self._turn.remove(lane)
        entries = self._lanes[lane]
        entry = heapq.heappop(entries)
        if entries:
            self._turn.append(lane)
        else:
            del self._lanes[lane]
        self._in_progress.add(entry.key)
        return lane, entry.key, entry.item

    def release(self, key: Hashable) -> None:
        """The popped item is finished (or failed): its key may be pushed again."""
        if key in self._in_progress:
            self._in_progress.discard(key)
            del self._claimed[key]

    def drop(self, key: Hashable) -> bool:
        """Remove a still-queued item (e.g. its file vanished from the drop zone)."""
        lane = self._claimed.get(key)
        if lane is None or key in self._in_progress:
            return False
        entries = self._lanes[lane]
        entries[:] = [e for e in entries if e.key != key]
        heapq.heapify(entries)
        del self._claimed[key]
        if not entries:
            del self._lanes[lane]
            self._turn.remove(lane)
        return True

    def is_claimed(self, key: Hashable) -> bool:
        return key in self._claimed

    def queued_keys(self) -> list[Hashable]:
        return [e.key for entries in self._lanes.values() for e in entries]

    def depth(self, lane: Lane | None = None) -> int:
        """Items waiting (not in progress), in one lane or in all."""
        if lane is not None:
            return len(self._lanes.get(lane, ()))
        return sum(len(e) for e in self._lanes.values())

    def __len__(self) -> int:
        return self.depth()
