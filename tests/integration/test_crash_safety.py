"""DESIGN §4 exactly-once: ``kill -9`` at any point of an ingest, then a restart, ends in the
same state as an uninterrupted run.

Data directory A ingests a file set as one job, then a second job, without interruption.
Data directory B runs the same two `onramp ingest` commands as child processes and kills
them with SIGKILL — at seeded random moments spread over the reference job's duration, and
at two injected points (after the ledger rows and reject files are written but before
COMMIT; right after COMMIT, before the store is closed and checkpointed) — then reruns each
command until it exits by itself, like an operator or the watcher would. The stores must
then hold the same profiles, links, ledger and receipts, and rerunning reports duplicates.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
import yaml

from onramp.testing import generate as gen

SEED = 20261122
NOW_1 = "2026-11-22T10:00:00Z"
NOW_2 = "2026-11-22T11:00:00Z"
TS = 1763800000
N_USERS = 50_000
DSID_SIDS = range(100_000, 100_050)

TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example]}
data_sources:
  - {dpid: 21, owner: 7, name: Acme cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 22, owner: 7, name: Acme CRM, id_type: cross_device, inbound_id_type: customer_id, id_definition: person}
  - {dpid: 23, owner: 7, name: Acme platform UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
traits:
  - {sid: 1, name: Cookie tablet, data_source: 21, type: onboarded, rule: 'product contains "tab"'}
  - {sid: 2, name: Cookie onboarded, data_source: 21, type: onboarded}
  - {sid: 3, name: CRM onboarded, data_source: 22, type: onboarded, ttl_days: 0}
"""

# Injected kill points: the child runs the real CLI with one method wrapped to SIGKILL itself.
_BOOT = """
import os, signal, sys
from onramp.service import ingest

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

point = os.environ["CRASH_AT"]
if point == "after_persist":  # ledger, receipts and reject files written; no COMMIT yet
    _persist = ingest._Job._persist
    def _wrapped(self, *a, **k):
        _persist(self, *a, **k)
        _die()
    ingest._Job._persist = _wrapped
elif point == "after_commit":  # COMMIT done; store not closed, WAL not checkpointed, no output
    _run = ingest._Job.run
    def _wrapped(self, *a, **k):
        _run(self, *a, **k)
        _die()
    ingest._Job.run = _wrapped
else:
    raise SystemExit(f"unknown CRASH_AT {point}")
sys.argv = ["onramp", *sys.argv[1:]]
from onramp.cli.app import main
main()
"""


def taxonomy() -> dict:
    """The YAML above plus generated traits: rule-less d_sid traits of the platform-UUID source
    and rule traits (equality, range, contains) of the CRM source for the key-value writer."""
    tax = yaml.safe_load(TAXONOMY)
    tax["traits"] += [
        {"sid": sid, "name": f"UUID trait {sid}", "data_source": 23, "type": "onboarded", "ttl_days": 120}
        for sid in DSID_SIDS
    ]
    rules = gen.bench_taxonomy(n_onboarded=0, n_equality_rules=300, n_range_rules=10, n_contains_rules=10)
    tax["traits"] += [dict(t, data_source=22) for t in rules["traits"]]
    return tax


def write_files(drop: Path, tax: dict) -> tuple[list[Path], list[Path]]:
    """Job 1: an ID sync, a ~200k-line .sync.gz, an .overwrite of the same source, a file with
    bad lines and an empty file (rejected as a whole). Job 2: an .overwrite.gz of the same users."""
    drop.mkdir()
    sync = drop / f"adobe_id_0_22_{TS}.sync"
    gen.write_sync_file(sync, 20_000, n_users=N_USERS, seed=1)
    big = drop / f"ftp_dpm_23_{TS + 1}.sync.gz"
    gen.write_dsid_file(big, 200_000, n_users=N_USERS, sids=DSID_SIDS, seed=2)
    over = drop / f"ftp_dpm_23_{TS + 2}.overwrite"
    gen.write_dsid_file(over, 20_000, n_users=N_USERS, sids=DSID_SIDS, seed=3)
    bad = drop / f"ftp_dpm_22_{TS + 3}.sync"
    gen.write_kv_file(bad, 5_000, taxonomy=tax, n_users=N_USERS, seed=4)
    with bad.open("ab") as f:
        f.write(("\n".join(gen.bad_lines()) + "\n").encode())
    empty = drop / f"ftp_dpm_22_{TS + 4}.sync"
    empty.write_bytes(b"")
    second = drop / f"ftp_dpm_23_{TS + 5}.overwrite.gz"
    gen.write_dsid_file(second, 80_000, n_users=N_USERS, sids=DSID_SIDS, seed=5)
    return [sync, big, over, bad, empty], [second]


# -- running the CLI ------------------------------------------------------------------------------
def _env(now: str, crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
    env["ONRAMP_NOW"] = now
    if crash_at:
        env["CRASH_AT"] = crash_at
    return env


def _argv(data_dir: Path, files: list[Path], crash_at: str | None) -> list[str]:
    head = [sys.executable, "-c", _BOOT] if crash_at else [sys.executable, "-m", "onramp"]
    return [*head, "--data-dir", str(data_dir), "ingest", "--json", *map(str, files)]


def ingest(data_dir: Path, files: list[Path], now: str) -> tuple[list[dict], float]:
    """One uninterrupted job; returns its receipts and wall time."""
    start = time.monotonic()
    proc = subprocess.run(_argv(data_dir, files, None), env=_env(now), capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    assert proc.returncode in (0, 3), f"ingest → {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout), elapsed


def apply_taxonomy(data_dir: Path, tax: dict) -> None:
    path = data_dir.parent / f"{data_dir.name}-taxonomy.yaml"
    path.write_text(yaml.safe_dump(tax, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(data_dir), "taxonomy", "apply", str(path)],
                          env=_env(NOW_1), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def count_rows(data_dir: Path, table: str) -> int:
    con = duckdb.connect(str(data_dir / "onramp.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def committed_jobs(data_dir: Path) -> int:
    return count_rows(data_dir, "jobs")


@dataclass
class Crasher:
    """Starts jobs in ``data_dir`` and kills them; records where each kill landed."""

    data_dir: Path
    log: Path
    kills: list[dict] = field(default_factory=list)

    def attempt(self, job: str, files: list[Path], now: str, *, delay: float | None = None,
                crash_at: str | None = None) -> int:
        """Run one attempt; SIGKILL it after ``delay`` seconds or let an injected point kill it."""
        before = committed_jobs(self.data_dir)
        stdout, stderr = self.log / f"{len(self.kills)}.out", self.log / f"{len(self.kills)}.err"
        with stdout.open("w") as out, stderr.open("w") as err:
            proc = subprocess.Popen(_argv(self.data_dir, files, crash_at), env=_env(now, crash_at), stdout=out, stderr=err)
            if delay is not None:
                time.sleep(delay)
                if proc.poll() is None:  # not reaped yet, so the PID is still this child's
                    os.kill(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=300)
        if code not in (0, 3, -signal.SIGKILL) or (crash_at and code != -signal.SIGKILL):
            raise AssertionError(f"{job} attempt ({crash_at or delay}) → {code}\n{stderr.read_text()}")
        after = committed_jobs(self.data_dir)
        self.kills.append({"job": job, "delay": delay, "crash_at": crash_at, "code": code,
                           "killed": code == -signal.SIGKILL, "committed": after > before})
        return code

    def complete(self, files: list[Path], now: str) -> list[dict]:
        receipts, _ = ingest(self.data_dir, files, now)
        return receipts

    def summary(self) -> str:
        return "\n".join(
            f"{k['job']}: {'delay %.2fs' % k['delay'] if k['delay'] is not None else k['crash_at']:<18} "
            f"{'killed' if k['killed'] else 'exit %d' % k['code']:<8} {'COMMITTED' if k['committed'] else 'no commit'}"
            for k in self.kills
        )


# -- comparing stores -----------------------------------------------------------------------------
RECEIPT_VOLATILE = ("receipt_id", "job_start", "job_end", "rejects")


def _multiset_diff(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    """Rows of ``query`` (with ``{db}`` for the schema) that are in one store and not the other,
    counting duplicates; empty when the multisets are equal."""
    a, b = query.format(db="a"), query.format(db="b")
    return con.execute(
        f"SELECT 'only A', * FROM (({a}) EXCEPT ALL ({b})) UNION ALL SELECT 'only B', * FROM (({b}) EXCEPT ALL ({a})) LIMIT 10"
    ).fetchall()


def effective_receipts(con: duckdb.DuckDBPyConnection, db: str, data_dir: Path) -> dict[tuple, tuple[dict, bytes | None]]:
    """Receipts of jobs that applied at least one file, keyed by (job start — the pinned clock —,
    kind, partner, dpid, target_dpid): the body minus IDs and times, and the uncompressed reject
    file it points to."""
    rows = con.execute(
        f"""SELECT j.started_at, r.kind, r.partner, r.dpid, r.target_dpid, r.body
              FROM {db}.receipts r JOIN {db}.jobs j USING (job_id)
             WHERE job_id IN (SELECT job_id FROM {db}.files WHERE status = 'applied')"""
    ).fetchall()
    out: dict[tuple, tuple[dict, bytes | None]] = {}
    for started, kind, partner, dpid, target, body in rows:
        key = (started, kind, partner, dpid, target)
        full = json.loads(body)
        rejects = None
        if full["rejects"]:
            path = data_dir / full["rejects"]
            assert path.is_file(), f"receipt {key} points to a missing reject file {path}"
            rejects = gzip.decompress(path.read_bytes())
        assert key not in out, f"two applying receipts for {key}"
        out[key] = ({k: v for k, v in full.items() if k not in RECEIPT_VOLATILE}, rejects)
    return out


def assert_same_state(a_dir: Path, b_dir: Path) -> None:
    con = duckdb.connect()
    con.execute(f"ATTACH '{a_dir / 'onramp.duckdb'}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b_dir / 'onramp.duckdb'}' AS b (READ_ONLY)")
    try:
        for what, query in {
            "realizations": "SELECT env, ns, id, sid, realized_at FROM {db}.realizations",
            "links": "SELECT env, dpid_a, id_a, dpid_b, id_b, last_seen FROM {db}.links",
            # Every version, applied or rejected, is recorded exactly once (test_rerun_of_a_rejected_file…).
            "ledger": "SELECT env, name, sha256, status, reason FROM {db}.files",
        }.items():
            diff = _multiset_diff(con, query)
            assert not diff, f"{what} differ (first rows): {diff}"
        n_real = con.execute("SELECT count(*) FROM b.realizations").fetchone()[0]
        assert n_real > 100_000  # the comparison above compared something
        twice = con.execute(
            """SELECT env, name, sha256, count(*) FROM b.files WHERE status = 'applied'
                GROUP BY ALL HAVING count(*) > 1"""
        ).fetchall()
        assert not twice, f"file versions applied twice: {twice}"
        dup_links = con.execute(
            "SELECT env, dpid_a, id_a, dpid_b, id_b, count(*) FROM b.links GROUP BY ALL HAVING count(*) > 1 LIMIT 5"
        ).fetchall()
        assert not dup_links, f"duplicate links: {dup_links}"
        ra, rb = effective_receipts(con, "a", a_dir), effective_receipts(con, "b", b_dir)
        assert sorted(ra) == sorted(rb)
        for key in ra:
            assert ra[key][0] == rb[key][0], f"receipt {key} differs"
            assert ra[key][1] == rb[key][1], f"reject file of receipt {key} differs"
    finally:
        con.close()


def _applied(receipts: list[dict]) -> dict[str, str]:
    return {f["name"]: f["status"] for r in receipts for f in r["files"] if not f["duplicate"]}


# -- the tests ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_at_any_point_converges_to_the_uninterrupted_state(tmp_path: Path) -> None:
    tax = taxonomy()
    job1, job2 = write_files(tmp_path / "drop", tax)
    a_dir, b_dir = tmp_path / "A", tmp_path / "B"
    apply_taxonomy(a_dir, tax)
    apply_taxonomy(b_dir, tax)

    # Reference: two uninterrupted jobs.
    ref1, t1 = ingest(a_dir, job1, NOW_1)
    ref2, t2 = ingest(a_dir, job2, NOW_2)
    assert _applied(ref1) == {p.name: "accepted" for p in job1[:-1]} | {job1[-1].name: "rejected"}
    assert _applied(ref2) == {job2[0].name: "accepted"}
    data23 = next(r for r in ref1 if r["kind"] == "data" and r["dpid"] == 23)
    assert data23["records_received"] == 220_000 and data23["total_removed_traits"] > 0
    assert next(r for r in ref1 if r["dpid"] == 22)["format_errors"] == len(gen.bad_lines())
    assert ref2[0]["total_removed_traits"] > 0  # job 2's overwrite acts on job 1's realizations
    assert committed_jobs(a_dir) == 2

    # Crashes. Random kills are stratified over the reference duration so that each run has
    # early (startup, loading) and late (classify, apply, persist, commit, close) kills.
    rng = random.Random(SEED)
    log = tmp_path / "log"
    log.mkdir()
    crash = Crasher(b_dir, log)
    for lo, hi in ((0.0, 0.35), (0.35, 0.7), (0.7, 1.05)):
        crash.attempt("job1", job1, NOW_1, delay=t1 * rng.uniform(lo, hi))
    crash.attempt("job1", job1, NOW_1, crash_at="after_persist")
    assert not crash.kills[-1]["committed"], "a crash before COMMIT left a committed job"
    crash.complete(job1, NOW_1)
    assert committed_jobs(b_dir) >= 1
    for lo, hi in ((0.0, 0.5), (0.5, 1.05)):
        crash.attempt("job2", job2, NOW_2, delay=t2 * rng.uniform(lo, hi))
    jobs_before = committed_jobs(b_dir)
    crash.attempt("job2", job2, NOW_2, crash_at="after_commit")
    assert committed_jobs(b_dir) == jobs_before + 1, "the committed job was lost by a crash before checkpoint"
    crash.complete(job2, NOW_2)
    print(f"\nreference: job 1 {t1:.2f}s, job 2 {t2:.2f}s\n{crash.summary()}")
    assert sum(k["killed"] for k in crash.kills) >= 4, crash.summary()

    assert_same_state(a_dir, b_dir)

    # Every file version is now in the ledger: ingesting all of them again is a no-op.
    again, _ = ingest(b_dir, job1 + job2, NOW_2)
    files = {f["name"]: f for r in again for f in r["files"]}
    assert set(files) == {p.name for p in job1 + job2}
    for name, f in files.items():
        assert f["duplicate"] is True, f
        assert f["status"] == ("rejected" if name == job1[-1].name else "accepted"), f
    assert_same_state(a_dir, b_dir)


def test_rerun_of_a_rejected_file_is_a_duplicate(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    apply_taxonomy(data_dir, yaml.safe_load(textwrap.dedent(TAXONOMY)))
    empty = tmp_path / f"ftp_dpm_22_{TS}.sync"
    empty.write_bytes(b"")
    first, _ = ingest(data_dir, [empty], NOW_1)
    assert first[0]["files"][0]["status"] == "rejected"
    again, _ = ingest(data_dir, [empty], NOW_1)
    assert again[0]["files"][0]["duplicate"] is True
    con = duckdb.connect(str(data_dir / "onramp.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 1
    finally:
        con.close()


def test_crash_before_commit_leaves_no_reject_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    apply_taxonomy(data_dir, yaml.safe_load(textwrap.dedent(TAXONOMY)))
    path = tmp_path / f"ftp_dpm_22_{TS}.sync"
    path.write_text("CRM1\td_sid=3\nCRM2 no tab\n")
    log = tmp_path / "log"
    log.mkdir()
    crash = Crasher(data_dir, log)
    crash.attempt("job", [path], NOW_1, crash_at="after_persist")
    assert committed_jobs(data_dir) == 0
    receipts = data_dir / "receipts"
    # Only the job's private staging area may remain: no receipt directory a user could find.
    visible = [p.name for p in receipts.iterdir() if p.name != ".pending"] if receipts.exists() else []
    assert not visible, visible
    # The next job settles the staging area (its crashed job never committed: deleted) and
    # publishes its own reject file where its receipt says.
    (receipt,), _ = ingest(data_dir, [path], NOW_1)
    assert not (receipts / ".pending").exists() or not any((receipts / ".pending").iterdir())
    assert [p.name for p in receipts.iterdir() if p.name != ".pending"] == [receipt["receipt_id"]]
    assert (data_dir / receipt["rejects"]).is_file()
