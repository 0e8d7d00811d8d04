"""Receipt mail (SPEC §6.1, §6.2, §6.4, §7.5): recipients and the exact message bytes.

Golden files live in tests/fixtures/mail/<case>.eml (LF line ends; the wire form is CRLF).
Regenerate after a deliberate change with ``ONRAMP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import email
import json
import os
from datetime import datetime
from email import policy
from pathlib import Path

import pytest

from onramp.formats.receipt import FileEntry, Receipt, empty_counters
from onramp.formats.receipt_mail import build_message, mail_wanted, message_bytes, recipients, reject_location
from onramp.service.notify import backoff

GOLDEN_DIR = Path(__file__).parents[1] / "fixtures" / "mail"
START, END, NOW = datetime(2026, 11, 22, 10, 0, 0), datetime(2026, 11, 22, 10, 0, 4), datetime(2026, 11, 22, 10, 0, 5)
SENDER = "onramp-noreply@onramp.example"
MAILBOX = "partner-solutions@onramp.example"


def _data_receipt() -> Receipt:
    counters = empty_counters("data") | {
        "records_received": 6, "format_errors": 1, "no_matching_aam_id": 1, "no_trait_realized": 2,
        "records_processed": 6, "stored_records": 2, "total_devices": 2, "total_signals": 5,
        "total_unused_signals": 2, "total_realized_traits": 2, "total_removed_traits": 1,
        "total_traits_failed_validation": 1, "total_users_with_failed_validation": 1,
    }
    return Receipt(
        receipt_id="3f1c0c5e9a7b4d2e8f6a1b2c3d4e5f60", kind="data", partner=7, dpid=21, target_dpid=21,
        environment="prod", job_start=START, job_end=END,
        files=[
            FileEntry("ftp_dpm_21_1700000000.sync", "s3://inbound/acme/date=2026-11-22/ftp_dpm_21_1700000000.sync"),
            FileEntry("ftp_dpm_21_1700000001.sync", "s3://inbound/acme/date=2026-11-22/ftp_dpm_21_1700000001.sync",
                      status="rejected", reason="empty file"),
        ],
        counters=counters, rejects="receipts/3f1c0c5e9a7b4d2e8f6a1b2c3d4e5f60/rejects.tsv.gz",
    )


def _sync_receipt() -> Receipt:
    counters = empty_counters("id_sync") | {"records_received": 3, "format_errors": 1, "rows_stored": 2, "links_created": 2}
    return Receipt(
        receipt_id="0a1b2c3d4e5f60718293a4b5c6d7e8f9", kind="id_sync", partner=7, dpid=21, target_dpid=22,
        environment="prod", job_start=START, job_end=END,
        files=[FileEntry("adobe_id_21_22_1700000000.sync", "file:///srv/drop/acme/adobe_id_21_22_1700000000.sync")],
        counters=counters, rejects="receipts/0a1b2c3d4e5f60718293a4b5c6d7e8f9/rejects.tsv.gz",
        warnings=["master column holds customer IDs of data source 21; they are linked and resolved transitively (D-15)"],
    )


def _rejected_files_receipt() -> Receipt:
    return Receipt(
        receipt_id="ffeeddccbbaa99887766554433221100", kind="rejected_files", partner=None, dpid=None, target_dpid=None,
        environment="beta", job_start=START, job_end=END,
        files=[FileEntry("données_21.sync", "s3://inbound/acme/date=2026-11-22/donn%C3%A9es_21.sync", status="rejected",
                         reason="invalid file name: 'données_21.sync' matches no inbound file name")],
        counters=empty_counters("data"),
    )


# case → (receipt, To list, reject location or None)
CASES = {
    "data_with_rejects": (
        _data_receipt(),
        recipients(mailbox=MAILBOX, partner_contacts=["ops@acme.example", "Partner-Solutions@onramp.example"],
                   notify=["crm-team@acme.example", "ops@acme.example"]),
        reject_location("receipts/3f1c0c5e9a7b4d2e8f6a1b2c3d4e5f60/rejects.tsv.gz", base_url="", data_dir="/srv/onramp-data"),
    ),
    "id_sync_linked_rejects": (
        _sync_receipt(),
        recipients(mailbox=MAILBOX, partner_contacts=["ops@acme.example"], notify=[]),
        reject_location("receipts/0a1b2c3d4e5f60718293a4b5c6d7e8f9/rejects.tsv.gz",
                        base_url="https://onramp.example/api/v1/", data_dir="/srv/onramp-data"),
    ),
    "rejected_files_non_ascii": (_rejected_files_receipt(), recipients(mailbox=MAILBOX), None),
}


def _build(case: str) -> bytes:
    receipt, to, rejects_at = CASES[case]
    msg = build_message(receipt, to=to, sender=SENDER, platform_name="Onramp", now=NOW, rejects_at=rejects_at)
    return message_bytes(msg)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_message(case: str) -> None:
    wire = _build(case)
    assert b"\r\n" in wire and b"\n" not in wire.replace(b"\r\n", b""), "wire form uses CRLF only"
    text = wire.replace(b"\r\n", b"\n")
    golden = GOLDEN_DIR / f"{case}.eml"
    if os.environ.get("ONRAMP_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(text)
    assert text == golden.read_bytes()


def test_every_golden_file_has_a_case() -> None:
    assert {p.stem for p in GOLDEN_DIR.glob("*.eml")} == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_message_parts(case: str) -> None:
    """Read back like a mail client: §6.2 body, subject header, the §11.3 JSON attached."""
    receipt, to, rejects_at = CASES[case]
    msg = email.message_from_bytes(_build(case), policy=policy.default)
    assert msg["Subject"] == "Onramp Server-To-Server Processing Result:"
    assert [a.addr_spec for a in msg["To"].addresses] == to
    assert msg["From"] == SENDER
    body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith(f"Dear Partner: (ID:{receipt.partner if receipt.partner is not None else 'unknown'})\n")
    for f in receipt.files:
        assert f.uri in body
    if rejects_at:
        assert body.endswith(f"Rejected lines: {rejects_at}\n")
    else:
        assert "Rejected lines" not in body
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == f"receipt-{receipt.receipt_id}.json"
    assert json.loads(attachment.get_content()) == receipt.to_json()


def test_sync_receipt_uses_its_own_counters() -> None:
    body = email.message_from_bytes(_build("id_sync_linked_rejects"), policy=policy.default).get_body(("plain",)).get_content()
    assert "Links created: 2" in body and "Stored Records" not in body  # §6.4
    assert "Warning: master column holds customer IDs" in body


def test_recipients_order_and_dedupe() -> None:
    assert recipients(
        mailbox="ps@onramp.example",
        partner_contacts=["ops@acme.example", " PS@onramp.example ", ""],
        notify=["crm@acme.example", "OPS@acme.example"],
    ) == ["ps@onramp.example", "ops@acme.example", "crm@acme.example"]
    assert recipients(mailbox="") == []


def test_reject_location() -> None:
    rel = "receipts/r1/rejects.tsv.gz"
    assert reject_location(rel, base_url="", data_dir="/srv/data/") == "/srv/data/receipts/r1/rejects.tsv.gz"
    assert reject_location(rel, base_url="https://h/x/", data_dir="/srv") == "https://h/x/receipts/r1/rejects.tsv.gz"


def test_receipt_of_duplicates_only_is_not_mailed() -> None:
    receipt = _data_receipt()
    assert mail_wanted(receipt)
    receipt.files = [FileEntry(f.name, f.uri, duplicate=True) for f in receipt.files]
    assert not mail_wanted(receipt)
    receipt.files[0].duplicate = False
    assert mail_wanted(receipt)


def test_backoff_doubles_up_to_the_cap() -> None:
    waits = [backoff(n, base=60, cap=3600).total_seconds() for n in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
