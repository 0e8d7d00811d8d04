"""The REST API over a real uvicorn server on loopback: tokens, tenancy, every endpoint.

Read-only tests share one world (tests/integration/api_world.py); tests that change the
store get their own, so no test depends on another's changes.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from onramp.service.api_tokens import create_token, revoke_token
from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.testing.uvicorn_thread import serve_in_thread
from tests.conftest import write
from tests.integration.api_world import NOW, UUID, World, built_world, make_app


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Shared by the tests that only read (or add what no other test looks at)."""
    with built_world(tmp_path_factory.mktemp("api")) as w:
        yield w


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    """For tests that change the store."""
    with built_world(tmp_path) as w:
        yield w


def cli(w: World, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "onramp", "--data-dir", str(w.settings.data_dir), *args],
                          capture_output=True, text=True, timeout=120, env=env)


# -- authentication ---------------------------------------------------------------------------
def test_healthz_needs_no_token(world: World):
    r = world.get(None, "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/api/v1/receipts", "/api/v1/files", "/metrics", "/api/v1/taxonomy",
                                  "/api/v1/profiles/21/u1", "/api/v1/data-sources/21/notify"])
def test_no_token_is_401(world: World, path: str):
    r = world.get(None, path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["detail"]["hint"], "errors carry a fix hint"


def test_unknown_and_revoked_tokens_are_401(world: World):
    with httpx.Client(base_url=world.base_url, headers={"Authorization": "Bearer onr_nope_nope"}) as c:
        assert c.get("/api/v1/receipts").status_code == 401
    con = connect(world.settings)
    try:
        row, world.tokens["doomed"] = create_token(con, role="partner", partner=7, label="doomed", now=NOW)
    finally:
        con.close()
    assert world.get("doomed", "/api/v1/receipts").status_code == 200
    con = connect(world.settings)
    try:
        revoke_token(con, row.token_id, now=NOW)
    finally:
        con.close()
    assert world.get("doomed", "/api/v1/receipts").status_code == 401


def test_admin_token_generated_once_with_0600(world: World):
    path = Path(world.settings.data_dir) / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == world.tokens["admin"]
    printed = cli(world, "tokens", "admin")
    assert printed.returncode == 0 and printed.stdout.strip() == world.tokens["admin"], "the same token on every call"
    assert world.get("admin", "/api/v1/receipts").status_code == 200


def test_configured_admin_token(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path / "data", http={"admin_token": "s3cret-configured"})
    with serve_in_thread(make_app(settings)) as base_url:
        with httpx.Client(base_url=base_url, headers={"Authorization": "Bearer s3cret-configured"}) as c:
            assert c.get("/api/v1/taxonomy").status_code == 200
    assert not (Path(settings.data_dir) / "admin-token").exists(), "no file when the token is configured"


def test_cli_partner_token_works_and_is_stored_hashed(world: World):
    r = cli(world, "tokens", "create", "--partner", "9", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    with httpx.Client(base_url=world.base_url, headers={"Authorization": f"Bearer {created['token']}"}) as c:
        ids = {x["receipt_id"] for x in c.get("/api/v1/receipts").json()}
    assert world.receipts[9]["receipt_id"] in ids and world.receipts[7]["receipt_id"] not in ids
    listed = cli(world, "tokens", "list", "--json")
    assert listed.returncode == 0 and created["token_id"] in listed.stdout
    assert created["token"] not in listed.stdout
    assert created["token"] not in (Path(world.settings.data_dir) / "onramp.duckdb").read_bytes().decode("latin-1")


def test_token_never_logged(world: World, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    # A second server on the same data directory, with the access log on; without lifespan,
    # because the ID-sync log it would open allows one writer (the world's server).
    with serve_in_thread(make_app(world.settings), access_log=True, lifespan="off") as base_url:
        for token in (world.tokens["acme"], "onr_bad_guess"):
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as c:
                c.get("/api/v1/receipts")
                body = c.get("/api/v1/receipts/nope").text
                assert token not in body
    assert caplog.records, "the access log was captured"
    assert not any(world.tokens["acme"] in r.getMessage() or "onr_bad_guess" in r.getMessage() for r in caplog.records)


# -- tenancy ----------------------------------------------------------------------------------
def test_partner_sees_only_its_receipts(world: World):
    mine, theirs = world.receipts[7]["receipt_id"], world.receipts[9]["receipt_id"]
    listed = {r["receipt_id"]: r for r in world.get("acme", "/api/v1/receipts").json()}
    assert mine in listed and theirs not in listed
    assert all(r["partner"] == 7 for r in listed.values())
    assert world.get("acme", f"/api/v1/receipts/{mine}").json()["stored_records"] == 1
    for suffix in ("", "/text", "/rejects"):
        r = world.get("acme", f"/api/v1/receipts/{theirs}{suffix}")
        assert r.status_code == 404, suffix
        assert theirs not in r.text or "not found" in r.text
    everything = {r["receipt_id"] for r in world.get("admin", "/api/v1/receipts", params={"limit": 1000}).json()}
    assert {mine, theirs} <= everything


def test_reject_file_download(world: World):
    mine = world.receipts[7]
    r = world.get("acme", f"/api/v1/receipts/{mine['receipt_id']}/rejects")
    assert r.status_code == 200 and r.headers["content-type"] == "application/gzip"
    rows = [line.split("\t") for line in gzip.decompress(r.content).decode().splitlines()]
    assert rows[0][:3] == ["file", "line_number", "bucket"]
    assert [(row[1], row[2]) for row in rows[1:]] == [("2", "format_error")]
    text = world.get("acme", f"/api/v1/receipts/{mine['receipt_id']}/text")
    assert text.text.startswith("Subject: Onramp Server-To-Server Processing Result:")


def test_partner_profile_view_is_its_own_data(world: World):
    full = world.get("admin", "/api/v1/profiles/21/u1").json()
    assert full["profile"] == {"dpid": 0, "id": UUID}, "a cookie ID resolves to its device (§3.8.3)"
    assert {t["sid"] for t in full["traits"]} == {101, 103}
    assert {s["sid"] for s in full["segments"]} == {5001, 5002}
    assert {(link["dpid"], link["id"]) for link in full["links"]} == {(21, "u1"), (55, "x1")}
    assert full["traits"][0]["realized_at"] == "2026-11-22T10:00:00Z"

    acme = world.get("acme", "/api/v1/profiles/21/u1")
    assert acme.status_code == 200
    body = acme.json()
    assert [t["sid"] for t in body["traits"]] == [101], "another partner's traits on the same device stay hidden"
    assert [s["sid"] for s in body["segments"]] == [5001]
    assert [(link["dpid"], link["id"]) for link in body["links"]] == [(21, "u1")]


@pytest.mark.parametrize("path", ["/api/v1/profiles/55/x1", f"/api/v1/profiles/0/{UUID}", "/api/v1/profiles/4242/u1"])
def test_partner_cannot_address_foreign_profiles(world: World, path: str):
    r = world.get("acme", path)
    assert r.status_code == 403
    assert "103" not in r.text and UUID not in r.text
    if "4242" not in path:
        assert world.get("admin", path).status_code == 200


def test_unknown_profile_is_404(world: World):
    r = world.get("acme", "/api/v1/profiles/21/nobody")
    assert r.status_code == 404 and r.json()["detail"]["hint"]


def test_partner_sees_only_its_files(world: World):
    names = {(f["name"], f["receipt_id"]) for f in world.get("other", "/api/v1/files").json()}
    assert ("ftp_dpm_55_1700000000.sync", world.receipts[9]["receipt_id"]) in names
    assert not any(n.startswith("ftp_dpm_21") or "_21_" in n for n, _ in names)


def test_metrics_token_reads_only_metrics(world: World):
    assert world.get("metrics", "/metrics").status_code == 200
    assert world.get("metrics", "/api/v1/receipts").status_code == 403
    assert world.get("acme", "/metrics").status_code == 403


# -- operations -------------------------------------------------------------------------------
def test_reprocess_runs_a_new_job(fresh: World):
    name = fresh.files[7].name
    assert fresh.send("acme", "POST", "/api/v1/files/reprocess", json={"name": name}).status_code == 403
    before = _metric(fresh, "onramp_files_total", {"env": "prod", "status": "accepted"})
    r = fresh.send("admin", "POST", "/api/v1/files/reprocess", json={"name": name, "env": "prod"})
    assert r.status_code == 200, r.text
    (receipt,) = r.json()["receipts"]
    assert receipt["files"][0]["duplicate"] is False and receipt["files"][0]["status"] == "accepted"
    assert receipt["stored_records"] == 1 and receipt["receipt_id"] != fresh.receipts[7]["receipt_id"]
    ledger = fresh.get("admin", "/api/v1/files", params={"name": name}).json()
    assert len(ledger) == 2 and r.json()["job_id"] in {f["job_id"] for f in ledger}
    assert _metric(fresh, "onramp_files_total", {"env": "prod", "status": "accepted"}) == before + 1
    missing = fresh.send("admin", "POST", "/api/v1/files/reprocess", json={"name": "ftp_dpm_21_1.sync"})
    assert missing.status_code == 404
    fresh.files[7].write_text("u1\td_sid=101\n")
    changed = fresh.send("admin", "POST", "/api/v1/files/reprocess", json={"name": name})
    assert changed.status_code == 409 and "changed" in changed.json()["detail"]["message"]


def test_reprocess_finds_files_the_service_archived(fresh: World):
    """The service moves handled uploads to processed/ (or rejected/) under the drop-zone root."""
    upload = fresh.drop / "acme" / "date=2026-11-22"
    upload.mkdir(parents=True)
    f = write(upload, "ftp_dpm_21_1700000100.sync", ["u1\td_sid=101"])
    run_job(fresh.settings, [f], clock=lambda: NOW)
    archived = fresh.drop / "processed" / "acme" / "date=2026-11-22" / f.name
    archived.parent.mkdir(parents=True)
    f.replace(archived)
    r = fresh.send("admin", "POST", "/api/v1/files/reprocess", json={"name": f.name})
    assert r.status_code == 200, r.text
    assert r.json()["receipts"][0]["files"][0]["uri"] == f.resolve().as_uri(), "the ledger keeps the upload's URI"
    archived.unlink()
    gone = fresh.send("admin", "POST", "/api/v1/files/reprocess", json={"name": f.name})
    assert gone.status_code == 409 and gone.json()["detail"]["hint"]


def test_reprocess_waits_for_the_services_job(fresh: World, monkeypatch: pytest.MonkeyPatch):
    """In `onramp serve` the watcher holds ``store_lock`` for each job; a reprocess is a job too."""
    import threading
    import time

    from onramp.server.api import routes_files
    from onramp.server.app import create_app

    monkeypatch.setattr(routes_files, "JOB_WAIT_SECONDS", 1.0)
    lock = threading.Lock()
    name = fresh.files[7].name
    # lifespan off: the world's own server already runs the ID-sync log of this data directory.
    with serve_in_thread(create_app(fresh.settings, store_lock=lock), lifespan="off") as url:
        post = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {fresh.tokens['admin']}"}, timeout=30)
        with post, lock:  # a watcher job is under way
            started = time.monotonic()
            busy = post.post("/api/v1/files/reprocess", json={"name": name})
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "5", busy.text
            assert time.monotonic() - started >= 1.0
            assert len(fresh.get("admin", "/api/v1/files", params={"name": name}).json()) == 1, "no job ran"

            answer: list[httpx.Response] = []
            waiting = threading.Thread(target=lambda: answer.append(post.post("/api/v1/files/reprocess", json={"name": name})))
            waiting.start()
            time.sleep(0.5)
            assert not answer, "the reprocess ran while the job held the store"
            lock.release()  # the job ends: the waiting reprocess takes its turn
            try:
                waiting.join(30)
            finally:
                lock.acquire()
        assert answer and answer[0].status_code == 200, answer and answer[0].text
    assert len(fresh.get("admin", "/api/v1/files", params={"name": name}).json()) == 2


def _metric(w: World, name: str, labels: dict[str, str]) -> float:
    r = w.get("admin", "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_metrics_text_format_parses(world: World):
    r = world.get("admin", "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("onramp_files", "onramp_lines", "onramp_job_duration_seconds", "onramp_queue_depth",
                 "onramp_idsync_requests", "onramp_api_auth_failures"):
        assert name in families, name
    assert families["onramp_job_duration_seconds"].type == "histogram"


def test_notification_list(fresh: World):
    url = "/api/v1/data-sources/21/notify"
    assert fresh.get("acme", url).json() == {"notify": []}
    r = fresh.send("acme", "PUT", url, json={"notify": ["crm@acme.example", "ops@acme.example", "crm@acme.example"]})
    assert r.status_code == 200 and r.json() == {"notify": ["crm@acme.example", "ops@acme.example"]}
    assert fresh.get("admin", url).json() == r.json()
    assert fresh.send("acme", "PUT", url, json={"notify": ["not an email"]}).status_code == 422
    assert fresh.send("acme", "PUT", "/api/v1/data-sources/55/notify", json={"notify": []}).status_code == 403
    assert fresh.get("acme", "/api/v1/data-sources/55/notify").status_code == 403
    assert fresh.get("acme", "/api/v1/data-sources/4242/notify").status_code == 403, "existence is not revealed"
    assert fresh.get("admin", "/api/v1/data-sources/4242/notify").status_code == 404
    assert fresh.get("other", "/api/v1/data-sources/55/notify").json() == {"notify": ["data@other.example"]}
    listed = fresh.get("acme", "/api/v1/data-sources").json()
    assert [s["dpid"] for s in listed] == [21] and listed[0]["notify"] == ["crm@acme.example", "ops@acme.example"]


def test_error_sampling_switch(fresh: World):
    url = "/api/v1/data-sources/21/error-sampling"
    assert fresh.get("acme", url).json() == {"enabled": False, "until": None}
    on = fresh.send("acme", "PUT", url, json={"enabled": True})
    assert on.status_code == 200 and on.json() == {"enabled": True, "until": "2026-12-06T10:00:00Z"}  # 14 days (§7.4)
    assert fresh.get("acme", url).json() == on.json()
    assert fresh.send("other", "PUT", url, json={"enabled": False}).status_code == 403
    assert fresh.send("acme", "PUT", url, json={"enabled": False}).json() == {"enabled": False, "until": None}


def test_taxonomy_export_and_apply(fresh: World):
    assert fresh.get("acme", "/api/v1/taxonomy").status_code == 403
    yaml_text = fresh.get("admin", "/api/v1/taxonomy")
    assert yaml_text.headers["content-type"].startswith("application/yaml") and "name: acme" in yaml_text.text
    doc = fresh.get("admin", "/api/v1/taxonomy", params={"format": "json"}).json()
    assert [p["pid"] for p in doc["partners"]] == [7, 9]

    added = "traits:\n  - {sid: 102, name: second, data_source: 21, type: onboarded}\n"
    r = fresh.send("admin", "POST", "/api/v1/taxonomy", content=added, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert r.json()["applied"]["traits"] == {"created": 1, "updated": 0, "unchanged": 0}
    trait = {"sid": 102, "name": "second", "data_source": 21, "type": "onboarded"}
    again = fresh.send("admin", "POST", "/api/v1/taxonomy", json={"traits": [trait]})
    assert again.status_code == 200 and again.json()["unchanged"] == 1

    bad = fresh.send("admin", "POST", "/api/v1/taxonomy", headers={"Content-Type": "application/yaml"},
                     content="traits:\n  - {sid: 104, name: x, data_source: 999, type: onboarded}\n")
    assert bad.status_code == 422
    problems = bad.json()["detail"]["problems"]
    assert problems and problems[0]["path"].startswith("traits[0]")
    assert fresh.send("acme", "POST", "/api/v1/taxonomy", content=added).status_code == 403
    assert fresh.send("admin", "POST", "/api/v1/taxonomy", content=b"\xff\xfe").status_code == 400


def test_openapi_lists_every_endpoint_with_bearer_auth(world: World):
    spec = world.get(None, "/openapi.json").json()
    paths = set(spec["paths"])
    assert {"/healthz", "/metrics", "/api/v1/taxonomy", "/api/v1/receipts", "/api/v1/receipts/{receipt_id}/rejects",
            "/api/v1/profiles/{dpid}/{user_id}", "/api/v1/files", "/api/v1/files/reprocess",
            "/api/v1/data-sources/{dpid}/notify", "/api/v1/data-sources/{dpid}/error-sampling"} <= paths
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_docs_list_every_operation(world: World):
    """docs/api.md's endpoint table and the live schema name the same operations."""
    spec = world.get(None, "/openapi.json").json()
    served = {(m.upper(), re.sub(r"\{[^}]*\}", "{}", path)) for path, ops in spec["paths"].items() for m in ops}
    documented = set()
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    for methods, path in re.findall(r"^\| `([A-Z`/]+) (/[^` ?]*)", doc, re.M):
        for m in methods.replace("`", "").split("/"):
            documented.add((m, re.sub(r"\{[^}]*\}", "{}", path)))
    assert documented == served


def test_store_left_closed_between_requests(world: World):
    """ADR 0001: another process (the CLI) can open the store while the server is idle."""
    assert world.get("acme", "/api/v1/receipts").status_code == 200
    env = {k: v for k, v in os.environ.items() if k != "ONRAMP_DATA_DIR"}
    env["ONRAMP_ENGINE__LOCK_WAIT_SECONDS"] = "0"
    r = cli(world, "receipts", "--json", env=env)
    assert r.returncode == 0, r.stderr
