"""The drop-zone contract every inbound transport implements (SPEC §3.1, §3.10).

A drop zone holds partner uploads laid out as ``<partner>/date=YYYY-MM-DD/<file>``
(S3 objects, or files under a local directory that the FTP/SFTP servers also write
to). The watcher (``onramp.service.watcher``) only talks to this protocol, so S3 and a
local directory behave the same. Objects outside the layout are never processed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Protocol

Outcome = Literal["processed", "rejected"]


@dataclass(frozen=True)
class DropObject:
    """One uploaded file in a drop zone."""

    partner: str  # first path segment: the partner's ID (or login name mapped to an ID)
    date: str  # YYYY-MM-DD from the ``date=`` segment
    name: str  # the file name, as partners name it (SPEC §3.2)
    key: str  # the full key / relative path inside the zone
    size: int
    mtime: float  # seconds since the epoch of the last write (quiet-time clock)
    etag: str | None = None  # content identity when the store provides one

    @property
    def uri(self) -> str:
        """How receipts name the file (SPEC §6.2 lists full URIs)."""
        return self.key


class DropZone(Protocol):
    env: str  # "prod" or "beta" (§9.1): each environment has its own zones

    def list_objects(self) -> Iterable[DropObject]:
        """Uploads in the layout that are not yet moved to processed/ or rejected/."""

    def fetch(self, obj: DropObject, dest_dir: Path) -> Path:
        """A local file with the object's bytes (the local zone may return its own path)."""

    def finish(self, obj: DropObject, outcome: Outcome) -> None:
        """Move the object under ``processed/`` or ``rejected/`` (kept for inspection)."""

    def put_back(self, partner: str, date: str, name: str, data: bytes) -> str:
        """Write a receipt JSON or reject file next to the partner's upload; returns its key."""
