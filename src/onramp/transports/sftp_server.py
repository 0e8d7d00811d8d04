"""The partner SFTP server (asyncssh), one chrooted account per partner (SPEC §3.1, §8.7).

Partners log in with a password or an OpenSSH public key. Each session is chrooted to
the partner's folder in the local drop zone and follows the rules of
``partner_homes``: read anywhere in the home, write only at its root, no folders, no
links, and no path — ``..``, absolute, or through a link planted by someone else —
that resolves outside the home. A file closed by the client is a finished upload and
moves into ``date=<UTC day>/``; one left open by a dropped connection stays at the
root, ignored, until the partner uploads it again.

``start_sftp_server`` runs asyncssh on its own event loop in a thread and returns a
handle with ``port`` and ``close()``, like ``start_ftp_server``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh import SFTPAttrs, SFTPNoSuchFile, SFTPPermissionDenied

from onramp.service.clock import system_clock
from onramp.settings import FtpSettings, Settings
from onramp.transports.forwarding import Send
from onramp.transports.partner_homes import PartnerAccount, ServerHandle, UploadPlacer, inside, may_write, prepare_homes, upload_placer

log = logging.getLogger("onramp.sftp")

_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC
_WRITE_ACCESS = asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA
_READ_ONLY = "read only: upload files to the root of your home folder (SPEC §3.1)"


class _PartnerSSHServer(asyncssh.SSHServer):
    """Authentication: the partner's password or one of its OpenSSH keys."""

    def __init__(self, accounts: Mapping[str, PartnerAccount]):
        self._accounts = accounts
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        account = self._accounts.get(username)
        if account is not None and account.public_keys and self._conn is not None:
            self._conn.set_authorized_keys(asyncssh.import_authorized_keys("\n".join(account.public_keys)))
        return True  # every login authenticates, known or not, so logins cannot be probed

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        account = self._accounts.get(username)
        return account is not None and account.check_password(password)

    def public_key_auth_supported(self) -> bool:
        return True


class PartnerSFTPServer(asyncssh.SFTPServer):
    """One session in one partner's home."""

    def __init__(self, chan: asyncssh.SSHServerChannel, home: Path, placer: UploadPlacer):
        super().__init__(chan, chroot=os.fsencode(home))
        self._home = home
        self._placer = placer
        self._writing: dict[int, Path] = {}

    def map_path(self, path: bytes) -> bytes:
        local = super().map_path(path)
        if not inside(self._home, os.fsdecode(local)):
            # A link, planted by anyone, that leads out of the home: behave as if absent.
            raise SFTPNoSuchFile("No such file")
        return local

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        self._check_write(path, pflags & _WRITE_FLAGS)
        return self._track(path, super().open(path, pflags, attrs), pflags & _WRITE_FLAGS)

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs) -> object:
        self._check_write(path, desired_access & _WRITE_ACCESS)
        return self._track(path, super().open56(path, desired_access, flags, attrs), desired_access & _WRITE_ACCESS)

    def close(self, file_obj: object) -> None:
        super().close(file_obj)
        local = self._writing.pop(id(file_obj), None)
        # asyncssh also closes files when a connection drops; only a close the client
        # sent while its channel is open marks a finished upload.
        if local is not None and not self.channel.is_closing():
            self._placer.place(self._home, local)

    def remove(self, path: bytes) -> None:
        self._check_write(path, True)
        super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, super().rename)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._rename(oldpath, newpath, super().posix_rename)

    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._check_write(path, True)
        super().setstat(path, _times_only(attrs))

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self._check_write(path, True)
        super().lsetstat(path, _times_only(attrs))

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        if id(file_obj) not in self._writing:
            raise SFTPPermissionDenied(_READ_ONLY)
        super().fsetstat(file_obj, _times_only(attrs))

    def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        raise SFTPPermissionDenied("folders cannot be created: upload files to the root of your home folder")

    def rmdir(self, path: bytes) -> None:
        raise SFTPPermissionDenied(_READ_ONLY)

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed: upload the file itself")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise SFTPPermissionDenied("links are not allowed: upload the file itself")

    def _rename(self, oldpath: bytes, newpath: bytes, do: Callable[[bytes, bytes], Any]) -> None:
        self._check_write(oldpath, True)
        self._check_write(newpath, True)
        do(oldpath, newpath)
        # Clients that upload under a temporary name finish with a rename.
        self._placer.place(self._home, Path(os.fsdecode(self.map_path(newpath))))

    def _check_write(self, path: bytes, writing: object) -> None:
        if writing and not may_write(os.fsdecode(path)):
            raise SFTPPermissionDenied(_READ_ONLY)

    def _track(self, path: bytes, file_obj: object, writing: object) -> object:
        if writing:
            self._writing[id(file_obj)] = Path(os.fsdecode(self.map_path(path)))
        return file_obj


def _times_only(attrs: SFTPAttrs) -> SFTPAttrs:
    """Partners may set times (``put -p``), never owners or modes on the platform's disk."""
    return SFTPAttrs(atime=attrs.atime, mtime=attrs.mtime)


def start_sftp_server(
    settings: Settings,
    root: Path,
    accounts: Mapping[str, PartnerAccount],
    *,
    port: int | None = None,
    clock: Callable[[], datetime] = system_clock,
    forward: Send | None = None,
) -> ServerHandle:
    """Serve the partners' homes under the zone ``root`` over SFTP (``ftp.sftp_port`` or ``port``).

    ``forward`` as for ``start_ftp_server``.
    """
    ftp: FtpSettings = settings.ftp
    homes = prepare_homes(root, accounts)
    host_key = _host_key(ftp.sftp_host_key or Path(settings.data_dir) / "keys" / "sftp_host_ed25519")
    placer = upload_placer(root, clock, forward, "sftp", retry_seconds=ftp.forward_retry_seconds)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="onramp-sftp", daemon=True)
    thread.start()

    def session(chan: asyncssh.SSHServerChannel) -> PartnerSFTPServer:
        return PartnerSFTPServer(chan, homes[chan.get_extra_info("username")], placer)

    async def start() -> asyncssh.SSHAcceptor:
        return await asyncssh.create_server(
            lambda: _PartnerSSHServer(accounts), ftp.host, ftp.sftp_port if port is None else port,
            server_host_keys=[host_key], sftp_factory=session, allow_scp=False,
        )

    try:
        acceptor = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    except BaseException:
        _stop_loop(loop, thread)
        placer.close()
        raise

    async def shutdown() -> None:
        acceptor.close()
        await acceptor.wait_closed()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        _stop_loop(loop, thread)
        placer.close()

    return ServerHandle(acceptor.sockets[0].getsockname()[1], stop)


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    async def cancel_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def _host_key(path: Path) -> asyncssh.SSHKey:
    """The server's SSH host key, generated on first start (partners pin it)."""
    if path.exists():
        return asyncssh.read_private_key(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key.export_private_key())
    os.replace(tmp, path)
    log.info("generated SFTP host key %s (%s)", path, key.get_fingerprint())
    return key
