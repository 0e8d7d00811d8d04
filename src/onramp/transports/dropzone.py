"""The drop-zone contract every inbound transport implements (SPEC §3.1, §3.10, §9.1).

A drop zone holds partner uploads laid out as ``<partner>/date=YYYY-MM-DD/<file>``
(S3 objects, or files under a local directory that the FTP/SFTP servers also write
to); ``<partner>`` is the partner's configured name (§3.1, §11.2). The watcher
(``onramp.service.watcher``) only talks to this protocol, so S3 and a local directory
behave the same. Objects outside the layout are never processed (``layout.parse_key``).

Each environment (``prod``, ``beta``) has its own zone (§9.1): ``open_dropzone``
builds the one the settings describe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from onramp.errors import OnrampError, UsageError
from onramp.transports.layout import Ignored

if TYPE_CHECKING:
    import duckdb

    from onramp.settings import Settings

Outcome = Literal["processed", "rejected"]
ENVIRONMENTS = ("prod", "beta")
# Partner folder name -> partner ID; a callable is asked again on every listing so
# partners added by `taxonomy apply` are seen without a restart.
PartnerFolders = Mapping[str, int] | Callable[[], Mapping[str, int]]

log = logging.getLogger("onramp.dropzone")


@dataclass(frozen=True)
class DropObject:
    """One uploaded file in a drop zone."""

    partner: str  # first path segment: the partner's configured name (§3.1)
    date: str  # YYYY-MM-DD from the ``date=`` segment
    name: str  # the file name, as partners name it (SPEC §3.2)
    key: str  # the full key / relative path inside the zone
    size: int
    mtime: float  # seconds since the epoch of the last write (quiet-time clock)
    etag: str | None = None  # content identity when the store provides one (S3)
    pid: int | None = None  # the partner's ID, from the partner folder
    uri: str = ""  # how receipts name the file: s3://bucket/key or file:///... (§6.2, [D-19])


class DropZone(Protocol):
    env: str  # "prod" or "beta" (§9.1): each environment has its own zones

    def list_objects(self) -> Iterable[DropObject]:
        """Uploads in the layout that are not yet moved to processed/ or rejected/."""

    def fetch(self, obj: DropObject, dest_dir: Path) -> Path:
        """A local file with the object's bytes (the local zone may return its own path).

        Raises ``DropObjectChanged`` (list again) or ``FileRejected`` (the platform may not
        read it: a rejected file, §3.1); anything else is transient and worth a retry.
        """

    def finish(self, obj: DropObject, outcome: Outcome) -> None:
        """Move the object under ``processed/`` or ``rejected/`` (kept for inspection).

        Raises ``FileRejected`` when the platform may not read it, so it cannot be copied (S3).
        """

    def put_back(self, partner: str, date: str, name: str, data: bytes) -> str:
        """Write a receipt JSON or reject file next to the partner's upload; returns its key."""

    def sweep(self, older_than: datetime) -> list[str]:
        """Delete archived (processed/rejected) objects archived before ``older_than``."""


class DropObjectChanged(OnrampError):
    """The object was replaced or removed since it was listed; list again and let it settle."""


def partner_folders(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Drop folder name -> partner ID, from the store's ``partners`` table (§11.2 ``name``)."""
    return {name: pid for pid, name in con.execute("SELECT pid, name FROM partners").fetchall()}


def resolve_partners(partners: PartnerFolders) -> Mapping[str, int]:
    return partners() if callable(partners) else partners


class IgnoreLog:
    """Logs each ignored key once per process, so a junk object does not flood the log."""

    def __init__(self, env: str):
        self.env = env
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, where: str, ignored: Ignored) -> None:
        if (where, ignored.reason) in self._seen:
            return
        self._seen.add((where, ignored.reason))
        level = logging.DEBUG if ignored.quiet else logging.WARNING
        log.log(level, "%s drop zone: ignoring %s: %s", self.env, where, ignored.reason)


def local_zone_root(settings: Settings, env: str) -> Path:
    """``<dropzone.path or data_dir/dropzone>/<env>``: prod and beta never share a folder."""
    _check_env(env)
    base = settings.dropzone.path or Path(settings.data_dir) / "dropzone"
    return Path(base) / env


def open_dropzone(settings: Settings, env: str, partners: PartnerFolders) -> DropZone:
    """The zone ``settings.dropzone`` describes for ``env`` (§9.1)."""
    _check_env(env)
    kind = settings.dropzone.kind
    if kind == "local":
        from onramp.transports.local import LocalDropZone

        return LocalDropZone(local_zone_root(settings, env), env, partners)
    if kind == "s3":
        from onramp.transports.s3 import S3DropZone

        return S3DropZone.from_settings(settings, env, partners)
    raise UsageError(f"dropzone.kind is {kind!r}", hint="set dropzone.kind to 'local' or 's3'")


def _check_env(env: str) -> None:
    if env not in ENVIRONMENTS:
        raise UsageError(f"unknown environment {env!r}", hint="use 'prod' or 'beta' (SPEC §9.1)")
