"""Finished FTP/SFTP uploads copied into a remote drop zone (SPEC §3.1).

"Internally FTP uploads are copied to S3 and then follow the same path": with an S3
drop zone, the FTP/SFTP homes are a local staging area and each finished upload is
sent to ``<prefix><partner>/date=<day>/<name>`` in the bucket. Sending runs on a
worker thread, never on the servers' event loops (a 3 GB upload must not stall other
partners' sessions). A file waits under ``<root>/.forwarding-<server>/<id>/<key>``
until the copy succeeded, so uploads survive a crash or an S3 outage: ``recover``
sends them at start and then every ``retry_seconds`` (``ftp.forward_retry_seconds``),
so an outage ends without a restart. Each server (FTP, SFTP) has its own staging
folder, so two servers never send the same file.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from onramp.transports.layout import DropKey, parse_key

Send = Callable[[str, Path], None]  # (zone-relative key, local file) -> None; raises on failure

log = logging.getLogger("onramp.forwarding")

class UploadForwarder:
    """Sends staged uploads with ``send``, one at a time, in the background.

    ``retry_seconds``: how often files whose copy failed are sent again (0 = only at start).
    """

    def __init__(self, root: Path, send: Send, server: str, *, retry_seconds: float = 0):
        self.staging = Path(root) / f".forwarding-{server}"  # hidden: never a partner folder, never listed
        self._send = send
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onramp-forward")
        # Staged files handed to the pool and not done yet: the retry timer must not send a
        # file a second time while its first copy is still queued or under way.
        self._queued: set[Path] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._retry_seconds = retry_seconds
        self._timer: threading.Thread | None = None
        if retry_seconds > 0:
            self._timer = threading.Thread(target=self._retry_loop, name=f"onramp-forward-retry-{server}", daemon=True)
            self._timer.start()

    def submit(self, key: str, path: Path) -> Future[None]:
        """Take ``path`` out of the partner's home at once, then send it as ``key``."""
        # A unique folder per upload: a re-upload of the same name cannot replace a file
        # that is still being sent.
        staged = self.staging / uuid.uuid4().hex / key
        staged.parent.mkdir(parents=True)
        with self._lock:
            self._queued.add(staged)  # before it appears in staging, where recover() looks
        os.replace(path, staged)
        return self._pool.submit(self._deliver, key, staged)

    def recover(self) -> list[Future[None]]:
        """Send what a crash or a failed copy left staged (and is not being sent already)."""
        pending = []
        for staged in sorted(self.staging.glob("*/*/*/*")):
            key = staged.relative_to(staged.parents[2]).as_posix()
            if not isinstance(parse_key(key), DropKey):
                continue
            with self._lock:
                if staged in self._queued or not staged.is_file():
                    continue
                self._queued.add(staged)
            pending.append(self._pool.submit(self._deliver, key, staged))
        return pending

    def close(self) -> None:
        self._closing.set()
        if self._timer is not None:
            self._timer.join()
        self._pool.shutdown(wait=True)

    def _retry_loop(self) -> None:
        while not self._closing.wait(self._retry_seconds):
            try:
                self.recover()
            except Exception:  # e.g. the staging folder unreadable: log it, try again next time
                log.exception("retrying staged uploads in %s failed", self.staging)

    def _deliver(self, key: str, staged: Path) -> None:
        try:
            self._send(key, staged)
        except Exception as exc:  # noqa: BLE001 - S3 down, bucket missing, ...: the file waits and is retried
            with self._lock:
                self._queued.discard(staged)
            when = f"in {self._retry_seconds:g} s" if self._retry_seconds > 0 else "at the next start"
            # One line, no traceback: during an outage this repeats for every waiting file.
            log.warning("could not forward %s (%s: %s); it stays in %s and is sent again %s",
                        key, type(exc).__name__, exc, staged, when)
            return
        with self._lock:
            staged.unlink()
            self._queued.discard(staged)
        for folder in staged.parents[:3]:  # date=, partner and the upload's own folder
            folder.rmdir()
        log.info("forwarded %s", key)
