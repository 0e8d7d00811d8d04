"""Receipts by mail (SPEC §6.1, §7.5): a durable outbox in the store, and its delivery.

A job enqueues each receipt's message in the job's own transaction, so a receipt and its mail
are committed together: no receipt without its mail, no mail for a receipt rolled back.
Delivery happens later, outside any job, and never deletes a message: it becomes
``sent``, is retried with exponential backoff, or is ``parked`` after
``mail.max_attempts`` failures (kept, with the last error, for an operator).

Delivery claims one message at a time by pushing its ``next_attempt_at`` past the send
(a lease), so two processes delivering at once never send the same message, and a crash
mid-send means one more attempt after the lease, not a lost message. The store is opened
only around each claim and result, never across a network call (ADR 0001).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from onramp.formats.receipt import Receipt
from onramp.formats.receipt_mail import build_message, mail_wanted, message_bytes, recipients, reject_location
from onramp.service.clock import Clock, system_clock
from onramp.settings import Settings
from onramp.store.db import connect
from onramp.transports.mail import MailServerUnavailable, MailTransport, open_transport

log = logging.getLogger("onramp.mail")

PENDING, SENT, PARKED = "pending", "sent", "parked"
MAX_ERROR_CHARS = 500


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0  # failed; another attempt is scheduled
    parked: int = 0  # failed for the last allowed time; kept in the outbox


@dataclass(frozen=True)
class _Claimed:
    receipt_id: str
    recipients: list[str]
    message: bytes
    attempts: int  # including the one under way


@dataclass(frozen=True)
class _Outcome:
    claimed: _Claimed
    error: Exception | None = None
    refused: dict[str, str] | None = None


def enqueue_receipts(con: duckdb.DuckDBPyConnection, settings: Settings, receipts: list[Receipt], *, now: datetime | None = None) -> int:
    """Store one message per receipt in ``mail_outbox``, inside the caller's transaction.

    Returns how many were enqueued. Receipts of already-processed files only are skipped
    (``mail_wanted``); so are receipts with nobody to send to (no mailbox configured).
    """
    now = now or system_clock()
    platform = settings.platform
    data_dir = str(Path(settings.data_dir).resolve())
    count = 0
    for r in receipts:
        if not mail_wanted(r):
            continue
        to = recipients(mailbox=platform.partner_solutions_email, partner_contacts=_contacts(con, r.partner),
                        notify=_notify_list(con, r.target_dpid))
        if not to:
            log.warning("receipt %s: no recipients (platform.partner_solutions_email is empty); not mailed", r.receipt_id)
            continue
        rejects_at = reject_location(r.rejects, base_url=settings.mail.reject_link_base, data_dir=data_dir) if r.rejects else None
        msg = build_message(r, to=to, sender=platform.sender, platform_name=platform.name, now=now, rejects_at=rejects_at)
        con.execute(
            """INSERT INTO mail_outbox (receipt_id, recipients, message, attempts, next_attempt_at, status, created_at)
               VALUES (?, ?, ?, 0, ?, ?, ?)""",
            [r.receipt_id, to, message_bytes(msg), now, PENDING, now],
        )
        count += 1
    return count


def deliver_pending(settings: Settings, *, clock: Clock = system_clock, limit: int = 100,
                    transport: MailTransport | None = None) -> DeliveryStats:
    """Send every message that is due (at most ``limit``), by SMTP or into the outbox directory.

    Safe to call from several processes and as often as wanted (e.g. after every job and
    on a timer); returns what happened to the messages it claimed.
    """
    stats = DeliveryStats()
    transport = transport or open_transport(settings.mail, settings.data_dir)
    lease = timedelta(seconds=2 * settings.mail.timeout_seconds + 60)
    claimed_count, outcome, keep_claiming = 0, None, limit > 0
    try:
        while True:
            con = connect(settings)
            try:
                if outcome is not None:
                    _record(con, settings, outcome, now=clock(), stats=stats)
                    outcome = None
                claimed = _claim(con, now=clock(), lease=lease) if keep_claiming else None
            finally:
                con.close()
            if claimed is None:
                return stats
            claimed_count += 1
            outcome = _attempt(transport, settings.platform.sender, claimed)
            # Without a server session the rest would fail alike: they stay due for the next run.
            keep_claiming = claimed_count < limit and not isinstance(outcome.error, MailServerUnavailable)
    finally:
        transport.close()


def retry_parked(settings: Settings, *, clock: Clock = system_clock) -> int:
    """Give parked messages a fresh set of attempts (after fixing the mail settings)."""
    con = connect(settings)
    try:
        rows = con.execute(
            "UPDATE mail_outbox SET status = ?, attempts = 0, next_attempt_at = ? WHERE status = ? RETURNING receipt_id",
            [PENDING, clock(), PARKED],
        ).fetchall()
    finally:
        con.close()
    return len(rows)


def backoff(attempts: int, *, base: float, cap: float) -> timedelta:
    """Wait after the ``attempts``-th failure: base, 2·base, 4·base, … never above ``cap``."""
    return timedelta(seconds=min(cap, base * 2 ** max(attempts - 1, 0)))


def _claim(con: duckdb.DuckDBPyConnection, *, now: datetime, lease: timedelta) -> _Claimed | None:
    row = con.execute(
        """UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?
            WHERE receipt_id = (SELECT receipt_id FROM mail_outbox
                                 WHERE status = ? AND next_attempt_at <= ?
                                 ORDER BY next_attempt_at, created_at, receipt_id LIMIT 1)
              AND status = ? AND next_attempt_at <= ?
        RETURNING receipt_id, recipients, message, attempts""",
        [now + lease, PENDING, now, PENDING, now],
    ).fetchone()
    return _Claimed(row[0], list(row[1]), bytes(row[2]), row[3]) if row else None


def _attempt(transport: MailTransport, sender: str, claimed: _Claimed) -> _Outcome:
    try:
        return _Outcome(claimed, refused=transport.send(claimed.receipt_id, sender, claimed.recipients, claimed.message))
    except Exception as exc:  # noqa: BLE001 - whatever failed, the message stays stored and is retried
        return _Outcome(claimed, error=exc)


def _record(con: duckdb.DuckDBPyConnection, settings: Settings, outcome: _Outcome, *, now: datetime, stats: DeliveryStats) -> None:
    mail, claimed, error = settings.mail, outcome.claimed, outcome.error
    if error is None:
        note = "; ".join(f"{a} refused: {reply}" for a, reply in (outcome.refused or {}).items()) or None
        if note:
            log.warning("receipt mail %s sent, but %s", claimed.receipt_id, note)
        con.execute("UPDATE mail_outbox SET status = ?, sent_at = ?, last_error = ? WHERE receipt_id = ?",
                    [SENT, now, note, claimed.receipt_id])
        stats.sent += 1
        return
    text = _describe(error, settings)
    if claimed.attempts >= mail.max_attempts:
        con.execute("UPDATE mail_outbox SET status = ?, last_error = ? WHERE receipt_id = ?", [PARKED, text, claimed.receipt_id])
        log.error("receipt mail %s parked after %d attempts: %s (fix the [mail] settings, then retry parked mail)",
                  claimed.receipt_id, claimed.attempts, text)
        stats.parked += 1
        return
    when = now + backoff(claimed.attempts, base=mail.retry_base_seconds, cap=mail.retry_max_seconds)
    con.execute("UPDATE mail_outbox SET next_attempt_at = ?, last_error = ? WHERE receipt_id = ?", [when, text, claimed.receipt_id])
    log.warning("receipt mail %s: attempt %d failed: %s; next attempt at %s UTC", claimed.receipt_id, claimed.attempts, text, when)
    stats.retried += 1


def _describe(error: Exception, settings: Settings) -> str:
    text = str(error) if isinstance(error, MailServerUnavailable) else f"{type(error).__name__}: {error}"
    secret = settings.mail.password.get_secret_value()
    if secret:
        # Servers sometimes echo what they were sent; the password never reaches logs or the store.
        text = text.replace(secret, "********")
    return text[:MAX_ERROR_CHARS]


def _contacts(con: duckdb.DuckDBPyConnection, pid: int | None) -> list[str]:
    if pid is None:
        return []
    row = con.execute("SELECT contacts FROM partners WHERE pid = ?", [pid]).fetchone()
    return list(row[0]) if row else []


def _notify_list(con: duckdb.DuckDBPyConnection, dpid: int | None) -> list[str]:
    if dpid is None:
        return []
    row = con.execute("SELECT notify FROM data_sources WHERE dpid = ?", [dpid]).fetchone()
    return list(row[0]) if row else []
