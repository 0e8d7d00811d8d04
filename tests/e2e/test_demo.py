"""`onramp demo` as a user runs it (README's first command, issue #3 item 2).

The demo starts the real service, uploads partner files over FTP and into the drop zone,
syncs a browser over HTTP and waits for the receipts the service writes back. These
tests look at what it leaves behind, not only at what it prints.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Onramp

# (partner folder, upload name pattern, archive) for every file the demo delivers
EXPECTED = [
    ("acme", r"adobe_id_0_21_\d{10}\.sync", "processed"),
    ("acme", r"adobe_id_0_22_\d{10}\.sync", "processed"),
    ("acme", r"ftp_dpm_21_\d{10}\.sync\.gz", "processed"),  # over FTP
    ("acme", r"ftp_dpm_22_\d{10}\.overwrite", "processed"),
    ("bravo", r"ftp_dpm_20914_21_\d{10}\.sync", "processed"),  # second-party, via an access mapping
    ("acme", r"ftp_dpm_23_\d{10}\.sync", "processed"),  # the file with errors
    ("acme", r"ftp_dpm_21_\d{10}\.sync\.zip", "rejected"),  # a container the platform cannot take
]


@contextlib.contextmanager
def default_ports_taken() -> Iterator[None]:
    """Occupy 8080 and 2121 (the service's default ports): the demo must not need them."""
    held = []
    for port in (8080, 2121):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
            held.append(s)
        except OSError:
            s.close()  # already taken by something else: just as good
    try:
        yield
    finally:
        for s in held:
            s.close()


def service_log(data_dir: Path) -> str:
    log = data_dir / "logs" / "demo-service.log"
    return f"\n--- {log}:\n" + (log.read_text() if log.exists() else "(none)")


def archived(zone: Path) -> dict[str, list[Path]]:
    return {outcome: sorted(p for p in (zone / outcome).rglob("*") if p.is_file()) for outcome in ("processed", "rejected")}


def receipt_for(upload: Path, zone: Path) -> Path:
    """The receipt written back next to the upload: ``<zone>/<partner>/date=…/<logical file>.receipt.json``."""
    rel = upload.relative_to(zone).parts[1:]  # drop processed/ or rejected/
    base = re.sub(r"\.gz$", "", upload.name) if not upload.name.endswith(".zip") else upload.name
    return zone.joinpath(*rel[:-1], base + ".receipt.json")


def check_run(data_dir: Path, stdout: str, runs: int, before: frozenset[Path] = frozenset()) -> frozenset[Path]:
    """Check what ``runs`` demo runs left in the data directory and that the last run's
    output names its files; returns every archived upload."""
    zone = data_dir / "dropzone" / "prod"
    done = archived(zone)
    names = {outcome: [p.name for p in paths] for outcome, paths in done.items()}
    for partner, pattern, outcome in EXPECTED:
        hits = [p for p in done[outcome] if p.parent.parent.name == partner and re.fullmatch(pattern, p.name)]
        assert len(hits) == runs, (pattern, names)
    assert sum(len(v) for v in done.values()) == runs * len(EXPECTED), names
    # nothing left waiting in the partners' folders: only receipts and reject files
    leftovers = [p for p in zone.glob("*/date=*/*") if not p.name.endswith((".receipt.json", ".rejects.tsv.gz"))]
    assert leftovers == []
    for upload in done["processed"] + done["rejected"]:
        receipt = receipt_for(upload, zone)
        assert receipt.is_file(), f"no receipt written back for {upload}"
        body = json.loads(receipt.read_text())
        status = {f["status"] for f in body["files"]}
        assert status == ({"rejected"} if upload in done["rejected"] else {"accepted"}), body
        if upload not in before:
            assert upload.name in stdout
    # the file with errors: its receipt counts them and the reject file explains each line
    bad = [p for p in done["processed"] if re.fullmatch(r"ftp_dpm_23_\d{10}\.sync", p.name)][-1]
    receipt = json.loads(receipt_for(bad, zone).read_text())
    assert receipt["format_errors"] >= 3 and receipt["invalid_aam_id"] >= 1, receipt
    rejects = receipt_for(bad, zone).with_name(bad.name + ".rejects.tsv.gz")
    assert rejects.is_file()
    rows = gzip.decompress(rejects.read_bytes()).decode().splitlines()
    assert rows[0].split("\t")[:4] == ["file", "line_number", "bucket", "reason"]
    assert {r.split("\t")[2] for r in rows[1:]} >= {"format_error", "invalid_aam_id"}
    assert str(rejects.relative_to(data_dir.parent)) in stdout
    # receipts are also mailed; without SMTP they land in the outbox
    assert len(list((data_dir / "outbox").glob("*.eml"))) >= runs * len(EXPECTED)
    return frozenset(done["processed"] + done["rejected"])


def test_demo_delivers_files_through_the_service_and_can_run_again(tmp_path: Path, monkeypatch) -> None:
    onramp = Onramp(tmp_path / "data")  # the real clock, as users run it
    monkeypatch.chdir(tmp_path)  # the demo prints paths relative to the current directory
    started = time.monotonic()
    with default_ports_taken():
        first = onramp("demo")
    assert first.code == 0, first.stdout + first.stderr + service_log(onramp.data_dir)
    assert time.monotonic() - started < 60, "the demo should finish well under a minute"
    out = first.stdout
    assert "(new)" in out
    assert ".receipt.json" in out and "Receipts written back next to the uploads" in out
    assert re.search(r"acme → FTP 127\.0\.0\.1:\d+ +ftp_dpm_21_\d{10}\.sync\.gz", out)
    assert "tokens admin" in out and re.search(r"REST API: +http://127\.0\.0\.1:\d+/api/v1 \(checked: GET /api/v1/receipts → 200", out)
    first_uploads = check_run(onramp.data_dir, out, runs=1)

    # the HTTP ID sync: a new browser gets a cookie, the redirect carries its UUID, a bad call is refused
    uuid = re.search(r"→ 200: 1×1 GIF \(42 bytes\); cookie demdex=(\d{38})", out).group(1)
    assert re.search(rf"→ 302: redirect to https://acme\.example/sync\?platform_id={uuid}", out)
    assert "→ 400: dpuuid:" in out
    # …and its links resolve the partner's files like file-based syncs: cookie traits on the
    # device, CRM traits through the CRM link
    profile = onramp("profile", "--json", f"0:{uuid}", check=True).json()
    assert {t["sid"] for t in profile["traits"]} == {102}
    assert {t["sid"] for t in profile["merged_traits"]} >= {101}
    assert {link["dpid"] for link in profile["links"]} == {21, 22}

    second = onramp("demo")
    assert second.code == 0, second.stdout + second.stderr + service_log(onramp.data_dir)
    assert "reusing it" in second.stdout
    check_run(onramp.data_dir, second.stdout, runs=2, before=first_uploads)


def test_demo_keep_running_serves_until_ctrl_c(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "onramp", "--data-dir", str(data_dir), "demo", "--keep-running"],
                                stdout=out, stderr=err, env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C to stop." not in out_path.read_text():
                assert proc.poll() is None, out_path.read_text() + err_path.read_text() + service_log(data_dir)
                assert time.monotonic() < deadline, out_path.read_text() + err_path.read_text() + service_log(data_dir)
                time.sleep(0.2)
            text = out_path.read_text()
            url = re.search(r"HTTP: +(http://127\.0\.0\.1:\d+)", text).group(1)
            ftp_port = int(re.search(r"Partner FTP: +127\.0\.0\.1:(\d+)", text).group(1))
            password = re.search(r"\(login acme, password (\S+)\)", text).group(1)
            # still serving: the HTTP server answers and a partner can upload over FTP
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
                assert json.loads(resp.read()) == {"status": "ok"}
            import ftplib

            with ftplib.FTP() as ftp:
                ftp.connect("127.0.0.1", ftp_port, timeout=10)
                ftp.login("acme", password)
                assert any(name.startswith("date=") for name in ftp.nlst())
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, out_path.read_text() + err_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    assert "Service stopped." in out_path.read_text()
