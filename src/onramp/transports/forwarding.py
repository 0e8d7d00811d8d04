"""Finished FTP/SFTP uploads copied into a remote drop zone (SPEC §3.1).

"Internally FTP uploads are copied to S3 and then follow the same path": with an S3
drop zone, the FTP/SFTP homes are a local staging area and each finished upload is
sent to ``<prefix><partner>/date=<day>/<name>`` in the bucket. Sending runs on a
worker thread, never on the servers' event loops (a 3 GB upload must not stall other
partners' sessions). A file waits under ``<root>/.forwarding-<server>/<id>/<key>``
until the copy succeeded, so uploads survive a crash or an S3 outage: ``recover``
sends them at the next start. Each server (FTP, SFTP) has its own staging folder, so
two servers never send the same file.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from onramp.transports.layout import DropKey, parse_key

Send = Callable[[str, Path], None]  # (zone-relative key, local file) -> None; raises on failure

log = logging.getLogger("onramp.forwarding")

class UploadForwarder:
    """Sends staged uploads with ``send``, one at a time, in the background."""

    def __init__(self, root: Path, send: Send, server: str):
        self.staging = Path(root) / f".forwarding-{server}"  # hidden: never a partner folder, never listed
        self._send = send
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onramp-forward")

    def submit(self, key: str, path: Path) -> Future[None]:
        """Take ``path`` out of the partner's home at once, then send it as ``key``."""
        # A unique folder per upload: a re-upload of the same name cannot replace a file
        # that is still being sent.
        staged = self.staging / uuid.uuid4().hex / key
        staged.parent.mkdir(parents=True)
        os.replace(path, staged)
        return self._pool.submit(self._deliver, key, staged)

    def recover(self) -> list[Future[None]]:
        """Send what a crash or a failed copy left staged."""
        pending = []
        for staged in sorted(self.staging.glob("*/*/*/*")):
            key = staged.relative_to(staged.parents[2]).as_posix()
            if staged.is_file() and isinstance(parse_key(key), DropKey):
                pending.append(self._pool.submit(self._deliver, key, staged))
        return pending

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _deliver(self, key: str, staged: Path) -> None:
        try:
            self._send(key, staged)
        except Exception:
            log.exception("could not forward %s; it stays in %s and is sent again at the next start", key, staged)
            return
        staged.unlink()
        for folder in staged.parents[:3]:  # date=, partner and the upload's own folder
            folder.rmdir()
        log.info("forwarded %s", key)
