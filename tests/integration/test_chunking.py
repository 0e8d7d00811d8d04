"""A big file is processed in chunks (engine/chunks.py); the outcome must not depend on the
chunk size: same receipts, same reject rows, same profiles as one pass over the file."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import duckdb
import pytest

from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
data_sources:
  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
traits:
  - {sid: 1, name: a, data_source: 22, type: onboarded}
  - {sid: 2, name: b, data_source: 22, type: onboarded}
  - {sid: 3, name: c, data_source: 22, type: onboarded, rule: 'color == "red"'}
  - {sid: 4, name: d, data_source: 21, type: onboarded}
  - {sid: 5, name: e, data_source: 21, type: onboarded}
"""
UUIDS = [f"{10**37 + i}" for i in range(5)]


def _lines(rng: random.Random, users: list[str], sids: list[int], n: int) -> list[str]:
    out = []
    for _ in range(n):
        items = []
        for _ in range(rng.randint(1, 4)):
            sid = rng.choice(sids)
            items.append(rng.choice([f"d_sid={sid}", f"d_unsid={sid}", f"{sid}:0", "color=red", "color=blue", "d_sid=x"]))
        out.append(f"{rng.choice(users)}\t{','.join(items)}")
    out.insert(n // 2, "no tab here")
    return out


def _world(tmp: Path, chunk_lines: int, chunk_bytes: int):
    data = tmp / f"data-{chunk_lines}-{chunk_bytes}"
    settings = load_settings(data_dir=data, engine={"chunk_lines": chunk_lines, "chunk_bytes": chunk_bytes},
                             inbound={"max_lines_per_user": 4})
    con = connect(settings)
    try:
        apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    finally:
        con.close()
    return settings


def _state(settings) -> tuple:
    con = duckdb.connect(str(Path(settings.data_dir) / "onramp.duckdb"), read_only=True)
    try:
        real = con.execute("SELECT env, ns, id, sid FROM realizations ORDER BY ALL").fetchall()
    finally:
        con.close()
    return real


@pytest.mark.parametrize("mode", ["sync", "overwrite"])
def test_results_do_not_depend_on_the_chunk_size(tmp_path: Path, mode: str) -> None:
    rng = random.Random(7)
    drop = tmp_path / "drop"
    drop.mkdir()
    # Device-level cookie IDs, two of which resolve to the same device (one chunk for both).
    sync = drop / "adobe_id_0_21_1700000000.sync"
    sync.write_text("".join(f"{UUIDS[i % 5]}\tCK{i}\n" for i in range(8)))
    cookie = drop / f"ftp_dpm_21_1700000001.{mode}"
    cookie.write_text("\n".join(_lines(rng, [f"CK{i}" for i in range(10)], [4, 5, 1], 120)) + "\n")
    crm = drop / f"ftp_dpm_22_1700000002.{mode}"
    crm.write_text("\n".join(_lines(rng, [f"CRM{i}" for i in range(12)], [1, 2, 3], 150)) + "\n")

    outcomes = []
    # By lines (one chunk, then many), and by bytes (about 30 lines of these files per chunk).
    for chunk_lines, chunk_bytes in ((1_000_000, 2**30), (40, 2**30), (9, 2**30), (1_000_000, 1_000)):
        settings = _world(tmp_path, chunk_lines, chunk_bytes)
        run_job(settings, [sync])
        result = run_job(settings, [cookie, crm])
        receipts = sorted(
            ({k: v for k, v in r.to_json().items() if k not in ("receipt_id", "job_start", "job_end", "rejects")}
             for r in result.receipts), key=repr)
        rejects = sorted(
            line for r in result.receipts if r.rejects
            for line in gzip.decompress((Path(settings.data_dir) / r.rejects).read_bytes()).decode().splitlines())
        outcomes.append((repr(receipts), _state(settings), rejects))
    assert outcomes[0][1] and outcomes[0][2], "the files realized something and rejected lines"
    assert outcomes[0] == outcomes[1] == outcomes[2] == outcomes[3]
