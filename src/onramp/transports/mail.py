"""Mail transports (SPEC §6.1): SMTP, or an outbox directory when no SMTP server is configured.

The narrow seam the receipt outbox (``onramp.service.notify``) talks to: hand over one
stored message, get back the recipients the server refused, or an exception. No retry
policy here; that lives with the outbox, next to the state it changes.
"""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Protocol

from onramp.errors import OnrampError
from onramp.settings import MailSettings
from onramp.store.files import write_durably

OUTBOX_DIR = "outbox"


class MailServerUnavailable(OnrampError):
    """No session with the SMTP server (connection, STARTTLS or login failed): every message
    would fail the same way, so the caller stops trying until later."""


class MailTransport(Protocol):
    def send(self, message_id: str, sender: str, recipients: list[str], message: bytes) -> dict[str, str]:
        """Deliver ``message``; return the refused recipients (address → server reply)."""

    def close(self) -> None: ...


class SmtpTransport:
    """One SMTP session reused for a run of messages; reopened after any failure."""

    def __init__(self, mail: MailSettings):
        self.mail = mail
        self._smtp: smtplib.SMTP | None = None

    def send(self, message_id: str, sender: str, recipients: list[str], message: bytes) -> dict[str, str]:
        try:
            smtp = self._smtp or self._open()
            refused = smtp.sendmail(sender, recipients, message)
        except BaseException:
            self.close()
            raise
        return {addr: f"{code} {reply.decode(errors='replace')}" for addr, (code, reply) in refused.items()}

    def _open(self) -> smtplib.SMTP:
        m = self.mail
        try:
            smtp = smtplib.SMTP(m.smtp_host, m.smtp_port, timeout=m.timeout_seconds)
        except (OSError, smtplib.SMTPException) as exc:
            raise self._unavailable(exc) from exc
        try:
            smtp.ehlo()
            if m.starttls:
                # Verified TLS: a relay that cannot prove its name does not get our credentials.
                context = ssl.create_default_context(cafile=str(m.ca_file) if m.ca_file else None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if m.username:
                smtp.login(m.username, m.password.get_secret_value())
        except (OSError, smtplib.SMTPException) as exc:
            smtp.close()
            raise self._unavailable(exc) from exc
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _unavailable(self, exc: BaseException) -> MailServerUnavailable:
        m = self.mail
        return MailServerUnavailable(
            f"no session with SMTP server {m.smtp_host}:{m.smtp_port}: {type(exc).__name__}: {exc}",
            hint="check the [mail] settings smtp_host, smtp_port, starttls, ca_file, username and password",
        )

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class OutboxDirectory:
    """``<data_dir>/outbox/<message_id>.eml``: the embedded default, read by people or a cron job."""

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / OUTBOX_DIR

    def send(self, message_id: str, sender: str, recipients: list[str], message: bytes) -> dict[str, str]:
        self.path.mkdir(parents=True, exist_ok=True)
        write_durably(self.path / f"{message_id}.eml", message)  # never half a message
        return {}

    def close(self) -> None:
        pass


def open_transport(mail: MailSettings, data_dir: Path | str) -> MailTransport:
    return SmtpTransport(mail) if mail.smtp_host else OutboxDirectory(data_dir)
