"""The partner FTP/FTPS server (pyftpdlib), one chrooted account per partner (SPEC §3.1, §9.2).

Each partner's home is its folder in the local drop zone (``partner_homes``). Sessions
start in binary mode, because ASCII mode corrupts ``.gz``/``.pgp`` files (§3.1); a
client that asks for ASCII gets the standard CRLF conversion. With ``ftp.certfile``
the server speaks explicit FTPS (AUTH TLS) and, by default, requires it.

``start_ftp_server`` runs the server in a thread and returns a handle with ``port``
and ``close()``; nothing is kept at module level, so several servers (prod, beta,
tests) can run in one process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import AuthenticationFailed, DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from onramp.errors import UsageError
from onramp.service.clock import system_clock
from onramp.settings import FtpSettings, Settings
from onramp.transports.forwarding import Send
from onramp.transports.partner_homes import PartnerAccount, ServerHandle, UploadPlacer, may_write, prepare_homes, upload_placer

# pyftpdlib permission letters: e=cd, l=list, r=download; a=append, d=delete, f=rename,
# w=upload are granted per path by ``partner_homes.may_write``; m=mkdir, M=chmod and
# T=set mtime never.
_READ = "elr"
_WRITE = "adfw"


class _Authorizer(DummyAuthorizer):
    """Password check in constant time; unknown logins fail like wrong passwords."""

    def __init__(self, accounts: Mapping[str, PartnerAccount]):
        super().__init__()
        self._accounts = accounts

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        account = self._accounts.get(username)
        if account is None or not self.has_user(username) or not account.check_password(password):
            raise AuthenticationFailed("Authentication failed: check the partner login and password.")

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        if perm in _READ:
            return True  # pyftpdlib has already confined the path to the home
        if perm not in _WRITE or path is None or os.path.isdir(path):
            return False
        rel = os.path.relpath(path, self.get_home_dir(username))
        return not rel.startswith("..") and may_write("/" + rel)


def start_ftp_server(
    settings: Settings | FtpSettings,
    root: Path,
    accounts: Mapping[str, PartnerAccount],
    *,
    port: int | None = None,
    clock: Callable[[], datetime] = system_clock,
    forward: Send | None = None,
) -> ServerHandle:
    """Serve the partners' homes under the zone ``root`` (``ftp.port``, or ``port``; 0 = any free port).

    With ``forward`` (e.g. ``S3DropZone.receive``) finished uploads are sent on to that
    zone instead of staying in ``root`` (SPEC §3.1: FTP uploads are copied to S3).
    """
    ftp = settings.ftp if isinstance(settings, Settings) else settings
    homes = prepare_homes(root, accounts)
    authorizer = _Authorizer(accounts)
    for login, home in homes.items():
        if accounts[login].password is None:
            continue  # key-only accounts exist for SFTP alone
        authorizer.add_user(login, "", str(home), perm=_READ + _WRITE, msg_login=f"Welcome, {login}. Upload files to this folder.")
    placer = upload_placer(root, clock, forward, "ftp", retry_seconds=ftp.forward_retry_seconds)
    handler = _handler_class(ftp, authorizer, placer, homes)
    try:
        # Its own IOLoop: pyftpdlib's default loop is process-global, and prod and beta
        # servers in one process must not share one.
        server = FTPServer((ftp.host, ftp.port if port is None else port), handler, ioloop=IOLoop())
    except BaseException:
        placer.close()
        raise
    stopping = threading.Event()

    def serve() -> None:
        try:
            while not stopping.is_set():
                server.serve_forever(timeout=0.1, blocking=False, handle_exit=False)
        finally:
            server.close_all()

    thread = threading.Thread(target=serve, name=f"onramp-ftp-{server.address[1]}", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=10)
        placer.close()  # waits for uploads still being forwarded

    return ServerHandle(server.address[1], stop)


def _handler_class(ftp: FtpSettings, authorizer: _Authorizer, placer: UploadPlacer, homes: Mapping[str, Path]) -> type:
    """A handler class of its own per server: pyftpdlib keeps its options on the class."""
    tls = ftp.certfile is not None
    base: type = TLS_FTPHandler if tls else FTPHandler

    class PartnerFTPHandler(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._current_type = "i"  # binary unless the client asks for ASCII (§3.1)

        def on_file_received(self, file: str) -> None:
            placer.place(homes[self.username], Path(file))

        def ftp_RNTO(self, path: str) -> Any:
            # Clients that upload under a temporary name finish with a rename: the upload
            # is complete once it has its final name.
            done = super().ftp_RNTO(path)
            if done:
                placer.place(homes[self.username], Path(done[1]))
            return done

    attrs: dict[str, Any] = {
        "authorizer": authorizer,
        "banner": "Onramp partner file drop: upload in binary mode (TYPE I).",
        "permit_foreign_addresses": False,
        "passive_ports": _passive_ports(ftp.passive_ports),
        "masquerade_address": ftp.masquerade_address or None,
    }
    if tls:
        if not Path(ftp.certfile).is_file():  # type: ignore[arg-type]
            raise UsageError(f"ftp.certfile {ftp.certfile} does not exist", hint="point ftp.certfile at a PEM file holding the certificate and its key")
        attrs.update(certfile=str(ftp.certfile), tls_control_required=ftp.tls_required, tls_data_required=ftp.tls_required)
    for name, value in attrs.items():
        setattr(PartnerFTPHandler, name, value)
    return PartnerFTPHandler


def _passive_ports(spec: str) -> list[int] | None:
    if not spec:
        return None
    try:
        low, high = (int(p) for p in spec.split("-"))
    except ValueError:
        raise UsageError(f"ftp.passive_ports is {spec!r}", hint="write a range LOW-HIGH, e.g. 60000-60100") from None
    return list(range(low, high + 1))
