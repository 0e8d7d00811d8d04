"""SPEC §6.3 worked example, end to end through the real CLI: every counter, the identity,
the text layout and the reject file."""

from __future__ import annotations

import gzip

from tests.conftest import write

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 21, owner: 7, name: Acme cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 55, owner: 9, name: Other, id_type: cookie, inbound_id_type: customer_id}
traits:
  - {sid: 101, name: ic one, data_source: 21, type: onboarded, rule: 'ic == "1"'}
  - {sid: 102, name: female, data_source: 21, type: onboarded, rule: 'gender == "f"'}
  - {sid: 103, name: other source, data_source: 55, type: onboarded}
"""

U = {f"u{i}": f"{i:038d}" for i in range(1, 6)}


def _setup(onramp, drop):
    onramp.apply(TAXONOMY)
    sync = write(drop, "adobe_id_0_21_1699999000.sync", [f"{uuid}\t{u}" for u, uuid in U.items()])
    onramp("ingest", str(sync), check=True, now="2026-11-21T10:00:00Z")
    # u5 had 101 before the job.
    pre = write(drop, "ftp_dpm_21_1699999500.sync", ["u5\td_sid=101"])
    onramp("ingest", str(pre), check=True, now="2026-11-21T11:00:00Z")


def test_worked_example_receipt(onramp, drop):
    _setup(onramp, drop)
    f = write(drop, "ftp_dpm_21_1700000000.sync", [
        "u1\t1,gender=f", "u2\td_sid=103", "u3\tcolor=red", "u4 1", "u5\td_unsid=101", "nosync\t1", "",
    ])
    res = onramp("ingest", "--json", str(f))
    assert res.code == 0, res.stderr
    (receipt,) = res.json()
    expected = {
        "records_received": 6, "format_errors": 1, "invalid_aam_id": 0, "invalid_device_id": 0,
        "no_matching_aam_id": 1, "no_trait_realized": 2, "records_processed": 6, "stored_records": 2,
        "total_devices": 2, "total_signals": 5, "total_unused_signals": 2, "total_realized_traits": 2,
        "total_removed_traits": 1, "total_traits_failed_validation": 1, "total_users_with_failed_validation": 1,
    }
    assert {k: receipt[k] for k in expected} == expected
    assert receipt["partner"] == 7 and receipt["dpid"] == 21 and receipt["target_dpid"] == 21
    assert receipt["files"][0]["status"] == "accepted" and receipt["files"][0]["duplicate"] is False
    assert receipt["job_start"] == "2026-11-22T10:00:00Z"
    rejects = onramp.data_dir / receipt["rejects"]
    rows = [line.split("\t") for line in gzip.decompress(rejects.read_bytes()).decode().splitlines()]
    assert rows[0] == ["file", "line_number", "bucket", "reason", "hint", "excerpt"]
    by_line = {int(r[1]): r for r in rows[1:]}
    assert sorted(by_line) == [2, 3, 4, 6]  # every non-stored line, nothing sampled away
    assert by_line[4][2] == "format_error" and by_line[6][2] == "no_matching_aam_id"
    assert by_line[2][2] == "no_trait_realized" and "not onboarded traits of data source 21" in by_line[2][3]
    assert all(r[4] for r in rows[1:]), "every reject has a fix hint"


def test_text_receipt_layout(onramp, drop):
    _setup(onramp, drop)
    f = write(drop, "ftp_dpm_21_1700000000.sync", ["u1\t1,gender=f", "u4 1"])
    res = onramp("ingest", str(f))
    assert res.code == 0
    lines = res.stdout.splitlines()
    assert lines[:4] == [
        "Subject: Onramp Server-To-Server Processing Result:",
        "Dear Partner: (ID:7)",
        "We have received your Server-To-Server file delivery",
        "File name:",
    ]
    assert lines[4] == f.resolve().as_uri()
    labels = [line.split(":")[0] for line in lines[5:22]]
    assert labels == [
        "Records received", "Format Errors", "Invalid AAM ID", "Invalid Device ID", "No Matching AAM ID",
        "No Trait Realized", "Records processed", "Stored Records", "Total devices", "Total signals",
        "Total unused signals", "Total realized traits", "Total removed traits", "Total traits failed validation",
        "Total users that have traits which failed validation", "Job start time", "Job end time",
    ]
    assert "Job start time: 2026-11-22 10:00:00" in lines


def test_duplicate_is_a_reported_noop(onramp, drop):
    _setup(onramp, drop)
    f = write(drop, "ftp_dpm_21_1700000000.sync", ["u1\t1"])
    assert onramp("ingest", "--json", str(f)).json()[0]["stored_records"] == 1
    again = onramp("ingest", "--json", str(f)).json()[0]
    assert again["files"][0]["duplicate"] is True and again["records_received"] == 0
    forced = onramp("ingest", "--json", "--reprocess", str(f)).json()[0]
    assert forced["files"][0]["duplicate"] is False and forced["stored_records"] == 1


def test_rejected_file_exit_3_and_bad_name_receipt(onramp, drop):
    _setup(onramp, drop)
    good = write(drop, "ftp_dpm_21_1700000000.sync", ["u1\t1"])
    bad = write(drop, "ftp_dpm_21_1700000000.sync.zip", ["u1\t1"])
    empty = drop / "ftp_dpm_21_1700000001.sync"
    empty.write_bytes(b"")
    res = onramp("ingest", "--json", str(good), str(bad), str(empty))
    assert res.code == 3
    receipts = res.json()
    statuses = {f["name"]: (f["status"], f["reason"]) for r in receipts for f in r["files"]}
    assert statuses["ftp_dpm_21_1700000000.sync"] == ("accepted", None)
    assert statuses["ftp_dpm_21_1700000001.sync"] == ("rejected", "empty file")
    assert statuses["ftp_dpm_21_1700000000.sync.zip"][0] == "rejected"
    assert any(r["kind"] == "rejected_files" for r in receipts)


def test_unauthorized_partner_rejected(onramp, drop):
    _setup(onramp, drop)
    f = write(drop, "ftp_dpm_21_1700000000.sync", ["u1\t1"])
    res = onramp("ingest", "--json", "--partner", "9", str(f))
    assert res.code == 3
    (receipt,) = res.json()
    assert receipt["files"][0]["reason"] == "partner 9 may not write data source 21"
    assert receipt["stored_records"] == 0
