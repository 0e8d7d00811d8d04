"""`onramp serve` end to end, as a real process (issue #3, SPEC §3.1, §3.10, §6.1, §9.1).

Partners deliver the ways they do — a file already waiting when the service starts, FTP
and SFTP uploads, an FTP upload to the beta environment's own server — and get their
receipts back next to their uploads, over FTP too. Beta data never reaches production
profiles. SIGTERM stops it.
"""

from __future__ import annotations

import ftplib
import io
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from onramp.service.api_tokens import admin_token
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.testing.serve_process import ServeProcess

TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example]}
data_sources:
  - {dpid: 21, owner: 7, name: Acme UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
traits:
  - {sid: 101, name: Acme one, data_source: 21, type: onboarded, rule: 'ic == "1"'}
"""
PROD_UUID = "12345678901234567890123456789012345678"
BETA_UUID = "99999999999999999999999999999999999999"
ENV = {"ONRAMP_INBOUND__SETTLE_SECONDS": "1", "ONRAMP_FTP__ACCOUNTS": '{"acme": "s3cret"}',
       "ONRAMP_FTP__SFTP_ENABLED": "true", "ONRAMP_FTP__SFTP_PORT": "0", "ONRAMP_FTP__BETA_PORT": "0"}


def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    con = connect(load_settings(data_dir=d))
    try:
        apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    finally:
        con.close()
    return d


def ftp_upload(port: int, name: str, body: bytes) -> None:
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=10)
        ftp.login("acme", "s3cret")
        ftp.storbinary(f"STOR {name}", io.BytesIO(body))


def ftp_read(port: int, path: str) -> bytes:
    out = io.BytesIO()
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", port, timeout=10)
        ftp.login("acme", "s3cret")
        ftp.retrbinary(f"RETR {path}", out.write)
    return out.getvalue()


def sftp_upload(port: int, name: str, body: bytes) -> None:
    import asyncio

    import asyncssh

    async def put() -> None:
        async with asyncssh.connect("127.0.0.1", port, username="acme", password="s3cret", known_hosts=None,
                                    agent_path=None, preferred_auth="password") as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(name, "wb") as f:
                await f.write(body)

    asyncio.run(put())


def wait_for(paths: list[Path], serve: ServeProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert serve.proc.poll() is None, serve.text()
        assert time.monotonic() < deadline, f"missing {[str(p) for p in paths if not p.exists()]}\n{serve.text()}"
        time.sleep(0.1)


def scrape(serve: ServeProcess, d: Path) -> list:
    """The samples of ``GET /metrics``, read with the admin token."""
    from prometheus_client.parser import text_string_to_metric_families

    token = admin_token(load_settings(data_dir=d))[0]
    request = urllib.request.Request(f"{serve.http_url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return [s for family in text_string_to_metric_families(resp.read().decode()) for s in family.samples]


def metric(samples: list, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    return found[0] if found else None


def wait_for_metrics(serve: ServeProcess, d: Path, ready, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while not ready(samples := scrape(serve, d)):
        assert time.monotonic() < deadline, samples
        time.sleep(0.1)
    return samples


def onramp(d: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(d), *args],
                          capture_output=True, text=True, timeout=120)


def test_partners_deliver_and_get_receipts_back_and_beta_stays_apart(tmp_path: Path):
    d = data_dir(tmp_path)
    zones = d / "dropzone"
    waiting = zones / "prod" / "acme" / "date=2026-11-22" / "ftp_dpm_21_1700000000.sync"
    waiting.parent.mkdir(parents=True)
    waiting.write_bytes(f"{PROD_UUID}\t1\n".encode())  # uploaded while the service was down

    with ServeProcess(d, env=ENV) as serve:
        serve.wait_ready()
        assert set(serve.ftp_ports) == {"prod", "beta"}
        with urllib.request.urlopen(f"{serve.http_url}/healthz", timeout=10) as resp:
            assert resp.status == 200

        assert set(serve.sftp_ports) == {"prod"}
        ftp_upload(serve.ftp_ports["prod"], "ftp_dpm_21_1700000001.sync", f"{PROD_UUID}\t1\nbad line\n".encode())
        # The beta environment has its own FTP server and drop zone (§9.1).
        ftp_upload(serve.ftp_ports["beta"], "ftp_dpm_21_1700000002.sync", f"{BETA_UUID}\t1\n".encode())
        sftp_upload(serve.sftp_ports["prod"], "ftp_dpm_21_1700000003.sync", f"{PROD_UUID}\t1\n".encode())

        wait_for([zones / "prod" / "processed" / "acme" / "date=2026-11-22" / waiting.name], serve)
        deadline = time.monotonic() + 60
        while len(list(zones.glob("*/processed/acme/date=*/ftp_dpm_21_*.sync"))) < 4:
            assert time.monotonic() < deadline and serve.proc.poll() is None, serve.text()
            time.sleep(0.1)

        # The receipts sit next to the uploads; the FTP partner reads its own over FTP.
        r0 = json.loads(waiting.with_name(waiting.name + ".receipt.json").read_text())
        assert (r0["environment"], r0["stored_records"], r0["files"][0]["status"]) == ("prod", 1, "accepted")
        (ftp_receipt,) = list((zones / "prod" / "acme").glob("date=*/ftp_dpm_21_1700000001.sync.receipt.json"))
        day = ftp_receipt.parent.name
        r1 = json.loads(ftp_read(serve.ftp_ports["prod"], f"{day}/ftp_dpm_21_1700000001.sync.receipt.json"))
        assert (r1["records_received"], r1["format_errors"], r1["stored_records"]) == (2, 1, 1)
        assert ftp_read(serve.ftp_ports["prod"], f"{day}/ftp_dpm_21_1700000001.sync.rejects.tsv.gz")[:2] == b"\x1f\x8b"
        (beta_receipt,) = list((zones / "beta" / "acme").glob("date=*/ftp_dpm_21_1700000002.sync.receipt.json"))
        r2 = json.loads(beta_receipt.read_text())
        assert (r2["environment"], r2["stored_records"]) == ("beta", 1)
        r3 = json.loads((ftp_receipt.parent / "ftp_dpm_21_1700000003.sync.receipt.json").read_text())
        assert r3["files"][0]["status"] == "accepted"  # the SFTP upload took the same path

        # /metrics counts what the receipts say: four jobs of one accepted file each.
        prod = [r0, r1, r3]
        m = wait_for_metrics(serve, d, lambda m: all(metric(m, "onramp_queue_depth", env=e) == 0 for e in ("prod", "beta")))
        assert metric(m, "onramp_files_total", env="prod", status="accepted") == 3
        assert metric(m, "onramp_files_total", env="beta", status="accepted") == 1
        assert metric(m, "onramp_files_total", env="prod", status="rejected") is None
        assert metric(m, "onramp_lines_total", env="prod", bucket="format_error") == sum(r["format_errors"] for r in prod) == 1
        assert metric(m, "onramp_lines_total", env="prod", bucket="stored") == sum(r["stored_records"] for r in prod) == 3
        assert metric(m, "onramp_lines_total", env="beta", bucket="stored") == r2["stored_records"] == 1
        assert metric(m, "onramp_job_duration_seconds_count", env="prod") == 3  # one job per file, none twice
        assert metric(m, "onramp_job_duration_seconds_count", env="beta") == 1
        assert metric(m, "onramp_job_duration_seconds_sum", env="prod") > 0

        # CLI commands keep working while the service runs (ADR 0001); beta never reaches prod.
        in_prod = onramp(d, "profile", "--env", "prod", "--json", f"0:{BETA_UUID}")
        in_beta = onramp(d, "profile", "--env", "beta", "--json", f"0:{BETA_UUID}")
        assert in_prod.returncode == 1, in_prod.stderr
        assert in_beta.returncode == 0, in_beta.stderr
        assert [t["sid"] for t in json.loads(in_beta.stdout)["traits"]] == [101]
        assert onramp(d, "profile", "--env", "prod", "--json", f"0:{PROD_UUID}").returncode == 0

        # Receipt mail went to the outbox (no SMTP configured): one message per receipt.
        deadline = time.monotonic() + 30
        while len(list((d / "outbox").glob("*.eml"))) < 4:
            assert time.monotonic() < deadline, serve.text()
            time.sleep(0.1)

        port = int(serve.http_url.rsplit(":", 1)[1])
        assert serve.stop(signal.SIGTERM) == 0
        log = serve.text()
    assert "SIGTERM received" in log and log.rstrip().endswith("stopped")
    assert "Traceback" not in log
    with socket.socket() as s:  # the HTTP port is free again
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_sigint_stops_an_idle_service_cleanly(tmp_path: Path):
    with ServeProcess(data_dir(tmp_path), env={"ONRAMP_FTP__ENABLED": "false"}) as serve:
        serve.wait_ready()
        assert serve.ftp_ports == {}
        assert serve.stop(signal.SIGINT, timeout=30) == 0
        assert "SIGINT received" in serve.text()


def test_bad_configuration_fails_at_start_with_a_hint(tmp_path: Path):
    d = data_dir(tmp_path)
    bad_cron = onramp_env(d, {"ONRAMP_INBOUND__SCHEDULE": "twice a day"})
    assert bad_cron.returncode == 2
    assert "inbound.schedule" in bad_cron.stderr and "minute hour" in bad_cron.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = onramp_env(d, {"ONRAMP_HTTP__PORT": str(taken.getsockname()[1]), "ONRAMP_FTP__ENABLED": "false"})
    assert busy.returncode == 2
    assert "cannot listen on 127.0.0.1" in busy.stderr and "http.port" in busy.stderr


def onramp_env(d: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    import os

    child = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
    return subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(d), "serve"], env={**child, **env},
                          capture_output=True, text=True, timeout=120)
