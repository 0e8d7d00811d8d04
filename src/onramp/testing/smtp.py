"""A real SMTP server in a thread, for tests and local trials (needs the ``test`` extra: aiosmtpd).

Records every message it accepts. Optional STARTTLS (a PEM certificate and key) and
AUTH (logins → passwords; AUTH is then required and, as in production relays, only
offered after STARTTLS).
"""

from __future__ import annotations

import email
import socket
import ssl
import threading
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None  # who authenticated, when AUTH was used

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class SmtpServer:
    """``with SmtpServer(port) as server: ...`` — listens on ``127.0.0.1:port`` until the block ends."""

    def __init__(self, port: int | None = None, *, cert: Path | None = None, key: Path | None = None,
                 logins: dict[str, str] | None = None, refuse: frozenset[str] = frozenset()):
        self.port = port or free_port()
        self.refuse = refuse  # recipients answered with 550 (no such mailbox)
        self.messages: list[ReceivedMail] = []
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._cert, self._key, self._logins = cert, key, logins
        self._controller = None

    def start(self) -> SmtpServer:
        from aiosmtpd.controller import Controller

        kwargs: dict = {"server_hostname": "onramp-test-smtp"}
        if self._cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self._cert, self._key)
            kwargs.update(tls_context=tls, require_starttls=True)
        if self._logins is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
        self._controller = Controller(_Handler(self), hostname=HOST, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (
            isinstance(auth_data, LoginPassword)
            and self._logins is not None
            and self._logins.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        if not ok:
            with self._lock:
                self.auth_failures += 1
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data.login.decode())

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        login = session.auth_data if session.authenticated else None
        self.server._record(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content or envelope.content), login))
        return "250 Message accepted for delivery"
