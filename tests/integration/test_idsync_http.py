"""The ID-sync pixel over real HTTP (SPEC §2.1): a uvicorn subprocess on a free loopback port.

Cookies (§1.3), opt-out, redirects, 400s (§2.1.2), consent, aliases; links reaching the
store and resolving an inbound file like file-based syncs do (§2.3.3); and durability:
every answered sync survives ``kill -9``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from onramp.server import synclog
from onramp.service.ingest import run_job
from onramp.settings import Settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.testing.pixel_client import run_closed_loop

TAXONOMY = """
partners: [{pid: 7, name: acme}]
data_sources:
  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
traits:
  - {sid: 12, name: cookie trait, data_source: 21, type: onboarded}
"""
SPEC_EXAMPLE = "/ibs:dpid=21&dpuuid=ab%20c%2F1&redir=https%3A%2F%2Fpartner.example%2Fsync%3Fplatform_id%3D%24%7BDD_UUID%7D"
ADMIN = "test-admin-token-0123456789"
COOKIE_RE = re.compile(r"^demdex=(\d{38}); Max-Age=15552000; Path=/; Secure; SameSite=None$")
# Public TCF v2 strings: the first grants purpose 1 (storage), the second grants nothing.
TCF_YES = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
TCF_NO = "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m onramp.server`` as a child process, like `onramp serve` runs it."""

    def __init__(self, data_dir: Path, *, load_seconds: float = 0.2, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "ONRAMP_HTTP__IDSYNC_LOAD_SECONDS": str(load_seconds),
                    "ONRAMP_HTTP__ADMIN_TOKEN": ADMIN, **(env or {})}
        self.env.pop("ONRAMP_NOW", None)
        self.proc: subprocess.Popen | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "onramp.server", "--data-dir", str(self.data_dir), "--port", str(self.port)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/ibs", timeout=1).status_code == 400:  # up, lifespan done
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server; its loader process must end with it, even after SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            children = psutil.Process(self.proc.pid).children(recursive=True)
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
            _, alive = psutil.wait_procs(children, timeout=15)
            assert not alive, f"left running after the server stopped: {alive}"
        self.proc = None


def make_data_dir(path: Path) -> Path:
    con = connect(Settings(data_dir=path))
    apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    con.close()
    return path


def logged(data_dir: Path) -> list[tuple[int, str, str]]:
    """(dpid, uuid, dpuuid) of every record in the ID-sync log: what the server made durable."""
    out = synclog.LoggedSyncs()
    directory = synclog.log_dir(data_dir)
    for seq in synclog.segments(directory):
        synclog.decode_records(synclog.segment_path(directory, seq).read_bytes(), out)
    return list(zip(out.dpid, out.uuid, out.dpuuid))


def store_links(data_dir: Path) -> set[tuple[int, str, int, str]]:
    con = connect(Settings(data_dir=data_dir), read_only=True)
    try:
        return set(con.execute("SELECT dpid_a, id_a, dpid_b, id_b FROM links WHERE env = 'prod'").fetchall())
    finally:
        con.close()


def set_cookie_uuid(resp: httpx.Response) -> str:
    (header,) = resp.headers.get_list("set-cookie")
    m = COOKIE_RE.match(header)
    assert m, header
    return m.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = make_data_dir(tmp_path_factory.mktemp("idsync") / "data")
    srv = Server(data_dir, env={"ONRAMP_HTTP__REDIRECT_ALLOW_HOSTS_BY_DPID": '{"22": ["*.partner.example"]}'}).start()
    yield srv
    srv.stop()
    assert srv.proc is None


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as c:
        yield c


def get(client: httpx.Client, url: str, cookie: str | None = None) -> httpx.Response:
    # Cookies by hand: the test controls exactly what the "browser" sends.
    return client.get(url, headers={"cookie": f"demdex={cookie}"} if cookie else {})


def test_first_call_sets_the_cookie_and_later_calls_reuse_it(server, client):
    first = get(client, "/ibs:dpid=21&dpuuid=first-call")
    assert first.status_code == 200
    assert (first.headers["content-type"], first.content[:6], len(first.content)) == ("image/gif", b"GIF89a", 42)
    assert first.headers.get_list("cache-control") == ["no-store, max-age=0"], "browsers must not cache the pixel"
    uuid = set_cookie_uuid(first)
    again = get(client, "/ibs:dpid=21&dpuuid=second-call", cookie=uuid)
    assert again.status_code == 200 and "set-cookie" not in again.headers
    assert {(21, uuid, "first-call"), (21, uuid, "second-call")} <= set(logged(server.data_dir))
    other = set_cookie_uuid(get(client, "/ibs:dpid=21&dpuuid=first-call"))
    assert other != uuid, "a browser without the cookie is a new device"


def test_spec_example_redirects_with_the_cookie_uuid(server, client):
    uuid = "07955261652886032950143702505894272138"
    resp = get(client, SPEC_EXAMPLE, cookie=uuid)
    assert resp.status_code == 302 and "set-cookie" not in resp.headers
    assert resp.headers["location"] == f"https://partner.example/sync?platform_id={uuid}"
    assert (21, uuid, "ab c/1") in logged(server.data_dir)


def test_redirect_for_a_new_browser_carries_the_new_uuid(client):
    resp = get(client, "/ibs:dpid=21&dpuuid=new-browser&redir=https%3A%2F%2Fp.example%2Fs%3Fid%3D%24%7BDD_UUID%7D")
    assert resp.status_code == 302
    assert resp.headers["location"] == f"https://p.example/s?id={set_cookie_uuid(resp)}"


def test_opted_out_browser_stores_nothing(server, client):
    gif = get(client, "/ibs:dpid=21&dpuuid=opted-out", cookie="NOTARGET")
    assert gif.status_code == 200 and "set-cookie" not in gif.headers
    redirect = get(client, "/ibs:dpid=21&dpuuid=opted-out&redir=https%3A%2F%2Fp.example%2Fs%3Fid%3D%24%7BDD_UUID%7D",
                   cookie="NOTARGET")
    assert redirect.status_code == 302 and "set-cookie" not in redirect.headers
    assert redirect.headers["location"] == "https://p.example/s?id="
    assert not [r for r in logged(server.data_dir) if r[2] == "opted-out"]


def test_a_cookie_that_is_no_platform_uuid_is_replaced(server, client):
    resp = get(client, "/ibs:dpid=21&dpuuid=bad-cookie", cookie="12345")
    uuid = set_cookie_uuid(resp)
    assert (21, uuid, "bad-cookie") in logged(server.data_dir)


@pytest.mark.parametrize("url", [
    "/ibs:dpid=99&dpuuid=rejected-1",  # unknown data source
    "/ibs:dpid=21&dpuuid=",  # empty
    "/ibs:dpid=21",  # missing
    "/ibs:dpid=21&dpuuid=rejected%3A2",  # ':' (§1.4)
    "/ibs:dpid=21&dpuuid=rejected-3&gdpr=1",  # D-12
    "/ibs:dpid=21&dpuuid=rejected-4&gdpr_consent=" + TCF_YES,
    "/ibs:dpid=22&dpuuid=rejected-5&redir=https%3A%2F%2Fevil.example%2F",  # not on 22's allow-list
    "/ibs:dpid=21&dpuuid=rejected-6&redir=javascript%3Aalert(1)",
    "/ibs:dpid=20914&dpuuid=rejected-7",  # not a GAID
])
def test_invalid_requests_get_400_no_cookie_no_link(server, client, url):
    resp = get(client, url)
    assert resp.status_code == 400, resp.text
    assert "set-cookie" not in resp.headers
    assert " — " in resp.text, "the body says what is wrong and how to fix it"
    assert not [r for r in logged(server.data_dir) if r[2].startswith("rejected")]


def test_allowed_redirect_host_of_a_data_source(client):
    resp = get(client, "/ibs:dpid=22&dpuuid=crm-1&redir=https%3A%2F%2Fsync.partner.example%2F%3Fu%3D%24%7BDD_UUID%7D")
    assert resp.status_code == 302
    assert resp.headers["location"] == f"https://sync.partner.example/?u={set_cookie_uuid(resp)}"


def test_consent_refusal_behaves_as_opted_out(server, client):
    uuid = "11111111111111111111111111111111111111"
    refused = get(client, f"/ibs:dpid=21&dpuuid=no-consent&gdpr=1&gdpr_consent={TCF_NO}&redir=https%3A%2F%2Fp.example%2F%24%7BDD_UUID%7D",
                  cookie=uuid)
    assert refused.status_code == 302 and refused.headers["location"] == "https://p.example/"
    fresh = get(client, f"/ibs:dpid=21&dpuuid=no-consent&gdpr=1&gdpr_consent={TCF_NO}")
    assert fresh.status_code == 200 and "set-cookie" not in fresh.headers, "no new cookie without consent"
    granted = get(client, f"/ibs:dpid=21&dpuuid=consent&gdpr=1&gdpr_consent={TCF_YES}", cookie=uuid)
    not_applicable = get(client, f"/ibs:dpid=21&dpuuid=gdpr-0&gdpr=0&gdpr_consent={TCF_NO}", cookie=uuid)
    assert granted.status_code == not_applicable.status_code == 200
    rows = logged(server.data_dir)
    assert (21, uuid, "consent") in rows and (21, uuid, "gdpr-0") in rows
    assert not [r for r in rows if r[2] == "no-consent"]


@pytest.mark.parametrize("url", [
    "/ibs?dpid=21&dpuuid=alias%2B1",
    "/ibs:d_dpid=21&d_dpuuid=alias%2B1",
    "/ibs:d_cid=21%01alias%2B1",
    "/ibs?d_cid=21%01alias%2B1&_=17",
])
def test_every_alias_writes_the_same_link(server, client, url):
    uuid = "22222222222222222222222222222222222222"
    before = logged(server.data_dir).count((21, uuid, "alias+1"))
    assert get(client, url, cookie=uuid).status_code == 200
    assert logged(server.data_dir).count((21, uuid, "alias+1")) == before + 1


def test_only_get_and_head(client):
    assert client.post("/ibs:dpid=21&dpuuid=x").status_code == 405
    head = client.head("/ibs:dpid=21&dpuuid=head", headers={"cookie": "demdex=NOTARGET"})
    assert head.status_code == 200 and head.content == b""


def test_links_reach_the_store_and_requests_are_counted(server, client):
    uuid = "33333333333333333333333333333333333333"
    get(client, "/ibs:dpid=22&dpuuid=stored%20crm", cookie=uuid)
    deadline = time.monotonic() + 20
    while (0, uuid, 22, "stored crm") not in store_links(server.data_dir):
        assert time.monotonic() < deadline, "the server loads the log into the store every 0.2 s"
        time.sleep(0.1)
    metrics = client.get("/metrics", headers={"authorization": f"Bearer {ADMIN}"})
    assert metrics.status_code == 200, metrics.text
    counts = dict(re.findall(r'^onramp_idsync_requests_total\{status="(\d+)"\} (\S+)$', metrics.text, re.M))
    assert float(counts["200"]) >= 1 and float(counts["400"]) >= 1


def test_http_synced_id_resolves_an_inbound_file(tmp_path):
    """§1.8: a cookie data source's lines land only when synced; HTTP syncs count like file syncs.

    The server is told not to load the log itself, so only the job's own load can help.
    """
    data_dir = make_data_dir(tmp_path / "data")
    srv = Server(data_dir, load_seconds=3600).start()
    try:
        resp = httpx.get(f"{srv.url}/ibs:dpid=21&dpuuid=visitor%2F42")
        uuid = set_cookie_uuid(resp)
    finally:
        srv.stop(signal.SIGKILL)
    assert store_links(data_dir) == set()
    data = tmp_path / "ftp_dpm_21_1700000000.sync"
    data.write_text("visitor/42\td_sid=12\nnever-synced\td_sid=12\n")
    (receipt,) = run_job(Settings(data_dir=data_dir), [data]).receipts
    assert (receipt.counters["stored_records"], receipt.counters["no_matching_aam_id"]) == (1, 1)
    con = connect(Settings(data_dir=data_dir), read_only=True)
    try:
        assert con.execute("SELECT ns, id, sid FROM realizations").fetchall() == [(0, uuid, 12)]
    finally:
        con.close()
    assert store_links(data_dir) == {(0, uuid, 21, "visitor/42")}


def test_every_answered_sync_survives_kill_9(tmp_path):
    """Issue #3: a link is durable once the response is sent (group-committed writes)."""
    data_dir = make_data_dir(tmp_path / "data")
    srv = Server(data_dir, load_seconds=0.5).start()  # the loader process runs meanwhile, and must die too
    n = 4000
    try:
        answers = asyncio.run(run_closed_loop("127.0.0.1", srv.port, [f"/ibs:dpid=21&dpuuid=durable-{i}" for i in range(n)],
                                              connections=64))
    finally:
        srv.stop(signal.SIGKILL)  # right after the last response
    assert [a.status for a in answers] == [200] * n
    answered = set()
    for i, a in enumerate(answers):
        (cookie,) = a.all("set-cookie")
        answered.add((0, COOKIE_RE.match(cookie).group(1), 21, f"durable-{i}"))
    assert len(answered) == n
    srv.start()  # startup loads what the killed server logged
    srv.stop()
    assert store_links(data_dir) == answered
