"""Partner home directories shared by the FTP and SFTP servers (SPEC §3.1).

A partner logs in with its name (§11.2) and is chrooted to ``<zone root>/<name>/``,
its folder in the local drop zone. It uploads at the root of its home, as with the
original system's FTP servers; when an upload completes it is moved into
``date=<UTC day>/`` — the layout S3 uploads use, since FTP uploads "follow the same
path" as S3 ones (§3.1) — where the watcher picks it up. Partners may read anything
in their home (receipts and reject files are written next to their uploads), write,
rename or delete only at its root, and never create folders or links. With an S3 drop
zone the homes are only a staging area and uploads go on to the bucket (``forwarding``).

The authorization rules live here, apart from the protocol servers: ``may_write``
and friends take virtual paths (``/name``) as the client sends them.
"""

from __future__ import annotations

import hmac
import os
import posixpath
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from onramp.errors import UsageError
from onramp.settings import FtpSettings
from onramp.transports.forwarding import Send, UploadForwarder
from onramp.transports.layout import dated_key, is_partial_name, is_partner_folder, is_put_back


@dataclass(frozen=True)
class PartnerAccount:
    """One partner's FTP/SFTP login."""

    login: str  # the partner's name = its drop folder
    password: str | None = None
    public_keys: tuple[str, ...] = ()  # OpenSSH format, for SFTP

    def check_password(self, password: str) -> bool:
        return self.password is not None and hmac.compare_digest(self.password.encode(), password.encode())


def accounts_from_settings(ftp: FtpSettings) -> dict[str, PartnerAccount]:
    """``ftp.accounts`` (passwords) and ``ftp.sftp_authorized_keys`` merged per login."""
    logins = set(ftp.accounts) | set(ftp.sftp_authorized_keys)
    return {
        login: PartnerAccount(
            login,
            ftp.accounts[login].get_secret_value() if login in ftp.accounts else None,
            tuple(ftp.sftp_authorized_keys.get(login, ())),
        )
        for login in sorted(logins)
    }


def prepare_homes(root: Path, accounts: Mapping[str, PartnerAccount]) -> dict[str, Path]:
    """Create each partner's home in the zone; refuse logins that are not partner folders."""
    homes = {}
    for login in accounts:
        if not is_partner_folder(login):
            raise UsageError(
                f"FTP/SFTP login {login!r} cannot be a drop folder",
                hint="use the partner's name from the taxonomy (no '/', not 'processed' or 'rejected')",
            )
        home = Path(root) / login
        home.mkdir(parents=True, exist_ok=True)
        homes[login] = home.resolve()
    return homes


def upload_placer(root: Path, clock: Callable[[], datetime], forward: Send | None, server: str, *,
                  retry_seconds: float = 0) -> UploadPlacer:
    """The placer for homes under ``root``; with ``forward``, uploads go on to a remote zone
    (failed copies sent again every ``retry_seconds``, ``ftp.forward_retry_seconds``)."""
    if forward is None:
        return UploadPlacer(clock)
    forwarder = UploadForwarder(root, forward, server, retry_seconds=retry_seconds)
    forwarder.recover()
    return UploadPlacer(clock, forwarder)


def virtual_depth(vpath: str) -> int:
    """Segments in a normalized virtual path: ``/`` is 0, ``/a`` is 1, ``/date=…/a`` is 2."""
    norm = posixpath.normpath(posixpath.join("/", vpath))
    return 0 if norm == "/" else norm.count("/")


def may_write(vpath: str) -> bool:
    """Uploads, renames and deletes only at the home root, never over a receipt."""
    return virtual_depth(vpath) == 1 and not is_put_back(posixpath.basename(vpath))


def inside(home: Path, real: str | os.PathLike[str]) -> bool:
    """Whether ``real`` (links resolved) is ``home`` or below it."""
    resolved = os.path.realpath(real)
    return resolved == str(home) or resolved.startswith(str(home) + os.sep)


@dataclass
class UploadPlacer:
    """Moves completed uploads from a home's root into its ``date=`` folder, or hands
    them to a forwarder when the drop zone is remote (S3)."""

    clock: Callable[[], datetime]
    forwarder: UploadForwarder | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def place(self, home: Path, path: Path) -> str | None:
        """Place ``path`` (a finished upload at ``home``'s root); returns its layout key."""
        if path.parent != home or is_partial_name(path.name) or is_put_back(path.name) or not path.is_file() or path.is_symlink():
            return None
        key = dated_key(home.name, self.clock().date(), path.name)
        if self.forwarder is not None:
            self.forwarder.submit(key, path)
            return key
        dest = home.parent / key
        with self._lock:
            dest.parent.mkdir(exist_ok=True)
            # A re-upload of the same name on the same day replaces the waiting file, as an
            # S3 PUT would; the ledger keeps processed versions apart by content.
            os.replace(path, dest)
        return key

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.close()


class ServerHandle:
    """A server running in a background thread."""

    def __init__(self, port: int, stop: Callable[[], None]):
        self.port = port
        self._stop = stop
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
