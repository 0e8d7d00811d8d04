"""Crash safety of `onramp serve` (DESIGN §4, issue #3): ``kill -9`` at any moment, restart,
and every settled file is processed exactly once — one job, one receipt written back, one
mail — and archived once.

Kill points: injected into the real CLI (the child SIGKILLs itself) right after a job's
COMMIT, after the receipt was written back but before any part moved, and between the
moves of a split file's parts; plus seeded random kills of a service working through a
backlog. After each crash the service is restarted until everything is archived.
"""

from __future__ import annotations

import gzip
import json
import random
import signal
import sys
import time
from pathlib import Path

from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.testing.serve_process import ServeProcess

TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example]}
  - {pid: 8, name: globex}
data_sources:
  - {dpid: 21, owner: 7, name: Acme UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 31, owner: 8, name: Globex UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
traits:
  - {sid: 101, name: Acme one, data_source: 21, type: onboarded, rule: 'ic == "1"'}
  - {sid: 301, name: Globex one, data_source: 31, type: onboarded, rule: 'ic == "1"'}
"""
SEED = 20261123
DAY = "date=2026-11-22"
ENV = {"ONRAMP_INBOUND__SETTLE_SECONDS": "0", "ONRAMP_FTP__ENABLED": "false"}

_BOOT = """
import os, signal, sys
from onramp.transports.local import LocalDropZone

def die():
    os.kill(os.getpid(), signal.SIGKILL)

point = os.environ["CRASH_AT"]
if point == "after_commit":  # the job committed: ledger, receipt, queued mail; nothing written back or moved
    from onramp.service import ingest
    _run_job = ingest.run_job
    def run_job(*a, **k):
        _run_job(*a, **k)
        die()
    ingest.run_job = run_job
elif point == "after_put_back":  # receipt written next to the upload; no part moved yet
    LocalDropZone.finish = lambda self, obj, outcome: die()
elif point == "between_moves":  # the first part of a split file moved, the second not
    _finish = LocalDropZone.finish
    moved = []
    def finish(self, obj, outcome):
        if moved:
            die()
        _finish(self, obj, outcome)
        moved.append(obj.key)
    LocalDropZone.finish = finish
else:
    raise SystemExit(f"unknown CRASH_AT {point}")
sys.argv = ["onramp", *sys.argv[1:]]
from onramp.cli.app import main
main()
"""


def uuid(i: int) -> str:
    return f"{i:038d}"


def prepare(tmp_path: Path, files: dict[str, bytes]) -> Path:
    d = tmp_path / "data"
    con = connect(load_settings(data_dir=d))
    try:
        apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    finally:
        con.close()
    for rel, body in files.items():
        path = d / "dropzone" / "prod" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return d


def uploads(d: Path) -> list[Path]:
    zone = d / "dropzone" / "prod"
    return [p for partner in ("acme", "globex") for p in sorted((zone / partner).glob("date=*/*"))
            if not p.name.endswith((".receipt.json", ".rejects.tsv.gz"))]


def run_to_completion(d: Path, *, mail: bool = True, timeout: float = 90) -> None:
    """Serve until every upload is archived (and, with ``mail``, every receipt mailed)."""
    with ServeProcess(d, env=ENV) as serve:
        serve.wait_ready()
        deadline = time.monotonic() + timeout
        while uploads(d) or any((d / "inflight").glob("*.json")) or (mail and _mail_pending(d)):
            assert serve.proc.poll() is None, serve.text()
            assert time.monotonic() < deadline, f"left: {uploads(d)}\n{serve.text()}"
            time.sleep(0.1)
        assert serve.stop() == 0, serve.text()


def _mail_pending(d: Path) -> bool:
    receipts = {p.stem for p in (d / "outbox").glob("*.eml")}
    return len(receipts) < len(_put_back_receipts(d))


def _put_back_receipts(d: Path) -> dict[str, dict]:
    zone = d / "dropzone" / "prod"
    return {p.name: json.loads(p.read_text()) for p in sorted(zone.glob("*/date=*/*.receipt.json"))}


def assert_exactly_once(d: Path, files: dict[str, bytes], *, all_mailed: bool = True) -> None:
    """Each upload archived once; one receipt per logical file, written back and stored alike;
    one queued mail per receipt (sent, unless a kill interrupted its delivery: then it is
    leased for a retry, which ``notify`` owns)."""
    zone = d / "dropzone" / "prod"
    archived = sorted(p.relative_to(zone).as_posix() for p in zone.glob("*/*/date=*/*"))
    expected_outcome = {rel: ("rejected" if body == b"" else "processed") for rel, body in files.items()}
    assert archived == sorted(f"{outcome}/{rel}" for rel, outcome in expected_outcome.items())  # no "~1" copies

    con = connect(load_settings(data_dir=d))
    try:
        stored = {r["receipt_id"]: r for (b,) in con.execute("SELECT body FROM receipts").fetchall() for r in [json.loads(b)]}
        ledger = con.execute("SELECT count(*), count(DISTINCT name) FROM files").fetchone()
        mails = con.execute("SELECT receipt_id, status FROM mail_outbox").fetchall()
    finally:
        con.close()
    logical = {rel.rsplit("/", 1)[1].split(".sync")[0] for rel in files}
    assert len(stored) == len(logical), "one receipt per logical file, no second one after a crash"
    assert not [f for r in stored.values() for f in r["files"] if f["duplicate"]]
    assert ledger == (len(files), len(files))
    put_back = _put_back_receipts(d)
    assert len(put_back) == len(logical)
    for name, body in put_back.items():
        assert stored[body["receipt_id"]] == body, f"{name} is not the stored receipt"
        assert {f["name"].split(".sync")[0] for f in body["files"]} == {name.split(".sync")[0]}
    assert sorted(rid for rid, _ in mails) == sorted(stored)
    sent = {rid for rid, status in mails if status == "sent"}
    written = {p.stem for p in (d / "outbox").glob("*.eml")}  # one file per receipt: never two mails
    # A kill between writing a message and recording it leaves it written but not yet "sent".
    assert sent <= written <= set(stored)
    if all_mailed:
        assert sent == set(stored)


def file_set() -> dict[str, bytes]:
    return {
        f"acme/{DAY}/ftp_dpm_21_1700000000.sync.1.gz": gzip.compress(f"{uuid(1)}\t1\n".encode()),
        f"acme/{DAY}/ftp_dpm_21_1700000000.sync.2.gz": gzip.compress(f"{uuid(2)}\t1\nbroken\n".encode()),
        f"acme/{DAY}/ftp_dpm_21_1700000001.sync": b"",  # rejected as a whole
        f"globex/{DAY}/ftp_dpm_31_1700000002.sync": f"{uuid(3)}\t1\n".encode(),
    }


def crash(d: Path, point: str) -> None:
    with ServeProcess(d, env={**ENV, "CRASH_AT": point}, argv=[sys.executable, "-c", _BOOT]) as crashing:
        assert crashing.proc.wait(90) == -signal.SIGKILL, crashing.text()


def stored_receipt_files(d: Path) -> list[str]:
    con = connect(load_settings(data_dir=d))
    try:
        return sorted(f["name"] for (b,) in con.execute("SELECT body FROM receipts").fetchall() for f in json.loads(b)["files"])
    finally:
        con.close()


def test_kills_at_critical_points_then_restarts(tmp_path: Path):
    """Files are dropped one logical file at a time, so each crash hits the job meant; each
    restart first settles what the previous crash left, then runs (and crashes) the next."""
    files = file_set()
    split = [f"acme/{DAY}/ftp_dpm_21_1700000000.sync.{i}.gz" for i in (1, 2)]
    empty = f"acme/{DAY}/ftp_dpm_21_1700000001.sync"
    d = prepare(tmp_path, {rel: files[rel] for rel in split})
    zone = d / "dropzone" / "prod"

    crash(d, "between_moves")  # the split file: committed, receipt back, part 1 moved, part 2 not
    assert (zone / "processed" / split[0]).exists() and (zone / split[1]).exists()
    assert (zone / f"acme/{DAY}/ftp_dpm_21_1700000000.sync.receipt.json").exists()

    (zone / empty).write_bytes(files[empty])
    crash(d, "after_commit")  # settles the split file from the ledger; the empty file's job commits, then dies
    assert (zone / "processed" / split[1]).exists()
    assert (zone / empty).exists() and not (zone / f"{empty}.receipt.json").exists()
    assert "ftp_dpm_21_1700000001.sync" in stored_receipt_files(d)

    crash(d, "after_put_back")  # settling the empty file writes its receipt back, then dies before the move
    assert (zone / empty).exists() and (zone / f"{empty}.receipt.json").exists()
    assert any((d / "inflight").glob("*.json"))

    for rel, body in files.items():
        if not (zone / rel).exists() and not (zone / "processed" / rel).exists() and not (zone / "rejected" / rel).exists():
            (zone / rel).parent.mkdir(parents=True, exist_ok=True)
            (zone / rel).write_bytes(body)
    run_to_completion(d)
    assert_exactly_once(d, files)


def test_random_kills_while_working_through_a_backlog(tmp_path: Path):
    rng = random.Random(SEED)
    files = {}
    for i in range(8):
        partner, dpid = ("acme", 21) if i % 3 else ("globex", 31)
        lines = "".join(f"{uuid(i * 100 + j)}\t1\n" for j in range(rng.randint(1, 50)))
        files[f"{partner}/{DAY}/ftp_dpm_{dpid}_17000000{i:02d}.sync"] = lines.encode()
    d = prepare(tmp_path, files)
    for _ in range(2):
        with ServeProcess(d, env=ENV) as serve:
            serve.wait_ready()
            time.sleep(rng.uniform(0.2, 2.5))  # somewhere in the stream of jobs
            assert serve.kill() == -signal.SIGKILL
    run_to_completion(d, mail=False)
    assert_exactly_once(d, files, all_mailed=False)
