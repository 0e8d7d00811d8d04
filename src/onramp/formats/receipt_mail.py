"""Receipt mail (SPEC §6.1, §6.2, §7.5): who receives a receipt, and the message itself.

Pure: the caller looks up the partner's contacts and the target data source's
notification list, resolves the reject file's location and passes ``now``; this module
only decides and renders, so golden files pin the exact bytes down.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from onramp.formats.receipt import Receipt, render_text
from onramp.formats.timestamps import aware_utc

SUBJECT_PREFIX = "Subject: "
REJECTS_LABEL = "Rejected lines"


def mail_wanted(receipt: Receipt) -> bool:
    """A receipt whose files were all processed before changes nothing and is not mailed.

    Re-picking a committed upload after a crash yields such a receipt; mailing it would
    send the partner the same receipt twice (issue #3: "no receipt sent twice").
    """
    return not receipt.files or not all(f.duplicate for f in receipt.files)


def recipients(*, mailbox: str, partner_contacts: Iterable[str] = (), notify: Iterable[str] = ()) -> list[str]:
    """§6.1: always the partner-solutions mailbox, then the uploader's contacts, then the
    target data source's notification list (§7.5). Each address once, first spelling kept:
    domains are case-insensitive and nobody wants two copies for ``Ops@`` and ``ops@``."""
    seen: set[str] = set()
    out: list[str] = []
    for address in (mailbox, *partner_contacts, *notify):
        address = address.strip()
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def reject_location(rejects: str, *, base_url: str, data_dir: str) -> str:
    """Where a reader finds the reject file: a link under ``base_url`` when the platform
    serves reject files, else its path in the data directory (``rejects`` is relative)."""
    if base_url:
        return f"{base_url.rstrip('/')}/{rejects}"
    return f"{data_dir.rstrip('/')}/{rejects}"


def build_message(
    receipt: Receipt,
    *,
    to: list[str],
    sender: str,
    platform_name: str,
    now: datetime,
    rejects_at: str | None,
) -> EmailMessage:
    """The receipt as a plain-text mail with the §11.3 JSON receipt attached.

    The §6.2 layout's first line is the subject; it becomes the Subject header rather than
    a body line, so the body starts at "Dear Partner".
    """
    subject_line, _, body = render_text(receipt, platform_name=platform_name).partition("\n")
    if rejects_at is not None:
        body += f"{REJECTS_LABEL}: {rejects_at}\n"
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject_line.removeprefix(SUBJECT_PREFIX)
    msg["Date"] = format_datetime(aware_utc(now))
    # Stable per receipt: a receiver (or a human) can tell a retried delivery from a new receipt.
    msg["Message-ID"] = f"<{receipt.receipt_id}.receipt@{_domain(sender)}>"
    # RFC 3834: no vacation auto-replies to a no-reply sender.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Onramp-Receipt-Id"] = receipt.receipt_id
    msg.set_content(body, charset="utf-8")
    attachment = (json.dumps(receipt.to_json(), indent=2) + "\n").encode()
    msg.add_attachment(attachment, maintype="application", subtype="json", filename=f"receipt-{receipt.receipt_id}.json")
    # A fixed boundary keeps the bytes reproducible; the receipt ID never occurs in base64 text.
    msg.set_boundary(f"=_receipt_{receipt.receipt_id}")
    return msg


def message_bytes(msg: EmailMessage) -> bytes:
    """Wire form (CRLF line ends), as stored in the outbox and handed to SMTP."""
    return msg.as_bytes(policy=policy.SMTP)


def _domain(address: str) -> str:
    _, _, domain = address.rpartition("@")
    return domain.strip("<> ") or "onramp.invalid"


