"""Receipts by mail (SPEC §6.1, §7.5; issue #3) against a real SMTP server (aiosmtpd).

An ingest queues one message per receipt in the same transaction as the receipt;
``deliver_pending`` sends it by SMTP (STARTTLS + AUTH when configured) or writes it to
the outbox directory. A failed delivery stays queued and is retried; nothing is lost, and a
message goes out twice only when the process dies between handing it to the server and
recording that (at-least-once, with the same Message-ID).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from onramp.service.ingest import run_job
from onramp.service.notify import DeliveryStats, deliver_pending, enqueue_receipts, retry_parked
from onramp.settings import Settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.testing.smtp import SmtpServer, free_port
from tests.conftest import write

NOW = datetime(2026, 11, 22, 10, 0, 0)
MAILBOX = "partner-solutions@onramp.example"
TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example, Partner-Solutions@onramp.example]}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 21, owner: 7, name: Acme cookies, id_type: cookie, inbound_id_type: customer_id, notify: [crm-team@acme.example]}
  - {dpid: 55, owner: 9, name: Other, id_type: cookie, inbound_id_type: customer_id, notify: [other@other.example]}
traits:
  - {sid: 101, name: ic one, data_source: 21, type: onboarded, rule: 'ic == "1"'}
  - {sid: 103, name: other source, data_source: 55, type: onboarded}
"""


class Clock:
    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before, "an SMTP server thread was left running"


def _settings(tmp_path: Path, **mail) -> Settings:
    return Settings(data_dir=tmp_path / "data", platform={"partner_solutions_email": MAILBOX, "sender": "noreply@onramp.example"},
                    mail={"starttls": False, **mail})


def _ingest(settings: Settings, drop: Path, clock: Clock):
    """Taxonomy, an ID sync and a data file with one rejected line: two receipts, two mails."""
    con = connect(settings)
    try:
        taxonomy, _ = load_taxonomy(TAXONOMY)
        apply_taxonomy(con, taxonomy)
    finally:
        con.close()
    sync = write(drop, "adobe_id_0_21_1699999000.sync", [f"{1:038d}\tu1"])
    run_job(settings, [sync], clock=clock)
    data = write(drop, "ftp_dpm_21_1700000000.sync", ["u1\t1", "u4 1"])
    return run_job(settings, [data], clock=clock).receipts[0]


def _drain(settings: Settings, clock: Clock) -> DeliveryStats:
    """Deliver until nothing due is left (a run stops early while the server is unreachable)."""
    total = DeliveryStats()
    while True:
        stats = deliver_pending(settings, clock=clock)
        if stats == DeliveryStats():
            return total
        total.sent, total.retried, total.parked = total.sent + stats.sent, total.retried + stats.retried, total.parked + stats.parked


def _outbox(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(Path(settings.data_dir) / "onramp.duckdb"), read_only=True)
    try:
        return con.execute("SELECT receipt_id, status, attempts, next_attempt_at, last_error FROM mail_outbox ORDER BY created_at, receipt_id").fetchall()
    finally:
        con.close()


def test_ingest_mails_the_receipt(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    with SmtpServer() as server:
        settings = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
        receipt = _ingest(settings, drop, clock)
        stats = deliver_pending(settings, clock=clock)
        assert (stats.sent, stats.retried, stats.parked) == (2, 0, 0)
    by_id = {m.message()["X-Onramp-Receipt-Id"]: m for m in server.messages}
    assert len(server.messages) == 2 and receipt.receipt_id in by_id
    mail = by_id[receipt.receipt_id]
    # §6.1 / §7.5: mailbox, the uploader's contacts, the target data source's list; each once.
    assert mail.rcpt_tos == [MAILBOX, "ops@acme.example", "crm-team@acme.example"]
    assert mail.mail_from == "noreply@onramp.example"
    msg = mail.message()
    assert msg["Subject"] == "Onramp Server-To-Server Processing Result:"
    body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith("Dear Partner: (ID:7)\nWe have received your Server-To-Server file delivery\nFile name:\n")
    assert "Records received: 2\nFormat Errors: 1\n" in body and "Stored Records: 1\n" in body
    rejects = Path(settings.data_dir).resolve() / receipt.rejects
    assert body.endswith(f"Rejected lines: {rejects}\n") and rejects.is_file()
    (attachment,) = list(msg.iter_attachments())
    assert json.loads(attachment.get_content()) == receipt.to_json()
    assert [row[1] for row in _outbox(settings)] == ["sent", "sent"]


def test_smtp_down_then_up_delivers_exactly_once(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    port = free_port()  # nothing listens here yet
    settings = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port, timeout_seconds=5)
    _ingest(settings, drop, clock)
    down = deliver_pending(settings, clock=clock)
    # The server is unreachable: one attempt, and the run stops instead of failing every message.
    assert (down.sent, down.retried, down.parked) == (0, 1, 0)
    assert _drain(settings, clock).retried == 1
    rows = _outbox(settings)
    assert all(r[1] == "pending" and r[2] == 1 and r[3] == NOW + timedelta(seconds=60) for r in rows)
    assert all("127.0.0.1" in r[4] and "ConnectionRefusedError" in r[4] for r in rows)
    with SmtpServer(port) as server:
        not_due = deliver_pending(settings, clock=clock)  # backoff: nothing is due yet
        assert (not_due.sent, not_due.retried) == (0, 0) and server.messages == []
        clock.now += timedelta(seconds=61)
        assert deliver_pending(settings, clock=clock).sent == 2
        clock.now += timedelta(days=1)
        assert deliver_pending(settings, clock=clock).sent == 0
    ids = sorted(m.message()["X-Onramp-Receipt-Id"] for m in server.messages)
    assert ids == sorted(r[0] for r in rows), "each receipt delivered exactly once"


_CRASH_AFTER_SEND = """
import json, os, signal, sys
from datetime import datetime
from onramp.service.notify import deliver_pending
from onramp.settings import Settings
from onramp.transports.mail import SmtpTransport

class CrashAfterSend(SmtpTransport):
    def send(self, *args):
        super().send(*args)  # the server has the message ...
        os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before recording it

settings = Settings(**json.loads(sys.argv[1]))
deliver_pending(settings, clock=lambda: datetime.fromisoformat(sys.argv[2]), transport=CrashAfterSend(settings.mail))
"""


def test_a_crash_after_sending_resends_after_the_lease_with_the_same_message_id(tmp_path: Path, drop: Path) -> None:
    """At-least-once: the send and its record cannot be one transaction (docs/service.md)."""
    clock = Clock()
    with SmtpServer() as server:
        settings = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, timeout_seconds=5)
        _ingest(settings, drop, clock)
        child = subprocess.run(
            [sys.executable, "-c", _CRASH_AFTER_SEND, settings.model_dump_json(include={"data_dir", "platform", "mail"}),
             clock.now.isoformat()],
            env={k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}, capture_output=True, text=True, timeout=60,
            check=False)
        assert child.returncode == -9, child.stderr
        (first,) = server.messages
        crashed = first.message()["X-Onramp-Receipt-Id"]
        # The claimed message is leased (2 × timeout + 60 s): meanwhile only the other one goes out.
        assert deliver_pending(settings, clock=clock).sent == 1
        assert [m.message()["X-Onramp-Receipt-Id"] == crashed for m in server.messages] == [True, False]
        clock.now += timedelta(seconds=2 * 5 + 60)
        assert deliver_pending(settings, clock=clock).sent == 1
        clock.now += timedelta(days=1)
        assert deliver_pending(settings, clock=clock).sent == 0
    again = server.messages[2].message()
    assert again["X-Onramp-Receipt-Id"] == crashed
    assert again["Message-ID"] == first.message()["Message-ID"], "the resend can be recognised as the same mail"
    assert {r[0]: (r[1], r[2]) for r in _outbox(settings)}[crashed] == ("sent", 2)


def test_a_refused_recipient_does_not_hold_back_the_others(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    with SmtpServer(refuse=frozenset({"crm-team@acme.example"})) as server:
        settings = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
        receipt = _ingest(settings, drop, clock)
        assert deliver_pending(settings, clock=clock).sent == 2
    mail = next(m for m in server.messages if m.message()["X-Onramp-Receipt-Id"] == receipt.receipt_id)
    assert mail.rcpt_tos == [MAILBOX, "ops@acme.example"]
    row = next(r for r in _outbox(settings) if r[0] == receipt.receipt_id)
    assert row[1] == "sent" and "crm-team@acme.example refused: 550" in row[4]


def test_failures_park_the_message_and_keep_it(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    port = free_port()
    settings = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=port, max_attempts=2, retry_base_seconds=10)
    _ingest(settings, drop, clock)
    assert _drain(settings, clock).retried == 2
    clock.now += timedelta(seconds=10)
    assert _drain(settings, clock).parked == 2
    clock.now += timedelta(days=30)
    assert deliver_pending(settings, clock=clock).sent == 0  # parked mail is not retried by itself
    assert [(r[1], r[2]) for r in _outbox(settings)] == [("parked", 2), ("parked", 2)]
    with SmtpServer(port) as server:
        assert retry_parked(settings, clock=clock) == 2
        assert deliver_pending(settings, clock=clock).sent == 2
    assert len(server.messages) == 2


def test_without_smtp_messages_go_to_the_outbox_directory(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    settings = _settings(tmp_path)  # no smtp_host: the embedded default
    receipt = _ingest(settings, drop, clock)
    assert deliver_pending(settings, clock=clock).sent == 2
    eml = Path(settings.data_dir) / "outbox" / f"{receipt.receipt_id}.eml"
    con = connect(settings)
    try:
        stored = con.execute("SELECT message FROM mail_outbox WHERE receipt_id = ?", [receipt.receipt_id]).fetchone()[0]
    finally:
        con.close()
    assert eml.read_bytes() == bytes(stored)
    assert sorted(p.name for p in eml.parent.iterdir()) == sorted(f"{r[0]}.eml" for r in _outbox(settings))
    assert deliver_pending(settings, clock=clock).sent == 0


def test_nothing_queued_for_dry_runs_and_duplicates(tmp_path: Path, drop: Path) -> None:
    clock = Clock()
    settings = _settings(tmp_path)
    _ingest(settings, drop, clock)
    queued = len(_outbox(settings))
    data = drop / "ftp_dpm_21_1700000000.sync"
    run_job(settings, [data], clock=clock)  # same file version again: a no-op receipt
    run_job(settings, [write(drop, "ftp_dpm_21_1700000009.sync", ["u1\t1"])], clock=clock, dry_run=True)
    assert len(_outbox(settings)) == queued
    run_job(settings, [data], clock=clock, reprocess=True)
    assert len(_outbox(settings)) == queued + 1


def test_mail_is_committed_with_its_receipt(tmp_path: Path, drop: Path) -> None:
    """A rolled-back transaction leaves neither the receipt nor its mail."""
    settings = _settings(tmp_path)
    _ingest(settings, drop, Clock())
    con = connect(settings)
    try:
        before = con.execute("SELECT count(*) FROM mail_outbox").fetchone()[0]
        (receipt,) = run_job(settings, [write(drop, "ftp_dpm_21_1700000001.sync", ["u1\t1"])], dry_run=True, con=con).receipts
        con.execute("BEGIN TRANSACTION")
        assert enqueue_receipts(con, settings, [receipt], now=NOW) == 1
        con.execute("ROLLBACK")
        assert con.execute("SELECT count(*) FROM mail_outbox").fetchone()[0] == before
    finally:
        con.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "smtp-cert.pem", tmp_path / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def test_starttls_and_auth(tmp_path: Path, drop: Path, certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    cert, key = certificate
    clock = Clock()
    with SmtpServer(cert=cert, key=key, logins={"onramp": "s3cret-pass"}) as server:
        wrong = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, starttls=True, ca_file=cert,
                          username="onramp", password="wrong-pass-123")
        _ingest(wrong, drop, clock)
        with caplog.at_level(logging.WARNING, logger="onramp.mail"):
            assert _drain(wrong, clock).retried == 2
        failures = server.auth_failures  # smtplib tries each offered mechanism
        assert failures >= 2 and server.messages == []
        assert "wrong-pass-123" not in caplog.text and "535" in caplog.text
        assert all("wrong-pass-123" not in r[4] for r in _outbox(wrong))

        # An unverifiable certificate is a failure too: credentials never go to an unproven server.
        untrusted = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, starttls=True,
                              username="onramp", password="s3cret-pass")
        clock.now += timedelta(seconds=60)
        assert _drain(untrusted, clock).retried == 2
        assert server.auth_failures == failures and "CERTIFICATE_VERIFY_FAILED" in _outbox(wrong)[0][4]

        right = _settings(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, starttls=True, ca_file=cert,
                          username="onramp", password="s3cret-pass")
        clock.now += timedelta(seconds=120)
        assert deliver_pending(right, clock=clock).sent == 2
    assert [m.login for m in server.messages] == ["onramp", "onramp"]
