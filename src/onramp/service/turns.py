"""Who may use the store inside `onramp serve`: jobs side by side, or one user alone.

Jobs of different partners run at the same time on one DuckDB database: each has its
own connection and transaction, and DuckDB refuses a write to a row another transaction
changed (``store.db.is_write_conflict``), which the watcher answers by running that job
again alone. Some users need the store to themselves: the ID-sync loader works in a child
process, which can open the file only once this process has closed it, and an API
reprocess takes its turn the same way. They take the *exclusive* turn.

An exclusive user that is waiting goes before jobs that arrive after it, so a steady
stream of jobs never starves the loader. ``acquire``/``release`` are the exclusive turn
with ``threading.Lock``'s signature, so code written for a plain lock works unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StoreTurns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._jobs = 0
        self._alone = False
        self._waiting_alone = 0

    # -- the exclusive turn (Lock-compatible) ---------------------------------------------
    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with self._cond:
            if not blocking:
                if self._alone or self._jobs:
                    return False
                self._alone = True
                return True
            self._waiting_alone += 1
            try:
                while self._alone or self._jobs:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._cond.wait(left)
                self._alone = True
                return True
            finally:
                self._waiting_alone -= 1
                self._cond.notify_all()  # jobs held back by this waiter may go if it gave up

    def release(self) -> None:
        with self._cond:
            if not self._alone:
                raise RuntimeError("release of a store turn that is not held")
            self._alone = False
            self._cond.notify_all()

    def __enter__(self) -> StoreTurns:  # noqa: PYI034 - the with-target is this very object
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def locked(self) -> bool:
        with self._cond:
            return self._alone or self._jobs > 0

    # -- jobs, side by side ---------------------------------------------------------------
    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._alone or self._waiting_alone:
                self._cond.wait()
            self._jobs += 1
        try:
            yield
        finally:
            with self._cond:
                self._jobs -= 1
                self._cond.notify_all()
