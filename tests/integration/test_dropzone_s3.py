"""The S3 drop zone against a real SeaweedFS server (SPEC §3.1, §9.1, §9.2)."""

from __future__ import annotations

import ftplib
import io
import logging
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from onramp.errors import FileRejected, UsageError
from onramp.settings import Settings
from onramp.testing.seaweed import Identity, partner_identity, start_seaweed
from onramp.transports.dropzone import DropObjectChanged, open_dropzone
from onramp.transports.ftp_server import start_ftp_server
from onramp.transports.layout import put_back_name
from onramp.transports.partner_homes import PartnerAccount
from onramp.transports.s3 import S3DropZone, zone_location
from onramp.transports.sftp_server import start_sftp_server

PARTNERS = {"acme": 7, "globex": 8}
DAY = "date=2026-11-22"
NAME = "ftp_dpm_21_1234567890.sync"
SHARED = "drop"  # the bucket the partner identities are scoped to
ACME = partner_identity("acme", SHARED)
GLOBEX = partner_identity("globex", SHARED)
# A platform key that may list everything but read only acme's objects: stands in for
# an object uploaded without bucket-owner-full-control (§3.1).
HALF_BLIND = Identity("half-blind", ["List:blind", "Read:blind/acme/*", "Write:blind"])
# The service tests (Watcher over S3) get buckets of their own: other tests leave uploads in
# SHARED and "blind", which a watcher would process. Identity names must be unique.
SERVICE = "svc"
SERVICE_ACME = Identity("acme-svc", partner_identity("acme", SERVICE).actions)
SERVICE_BLIND = Identity("half-blind-svc", ["List:blind-svc", "Read:blind-svc/acme/*", "Write:blind-svc"])


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    identities = [ACME, GLOBEX, HALF_BLIND, SERVICE_ACME, SERVICE_BLIND]
    with start_seaweed(tmp_path_factory.mktemp("seaweed"), identities) as server:
        for bucket in (SHARED, "blind", SERVICE, "blind-svc"):
            server.create_bucket(bucket)
        yield server


@pytest.fixture
def bucket(seaweed) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    seaweed.create_bucket(name)
    return name


def zone(seaweed, bucket: str, prefix: str = "", env: str = "prod", client=None) -> S3DropZone:
    return S3DropZone(client or seaweed.client(), bucket, prefix, env, PARTNERS)


def put(client, bucket: str, key: str, data: bytes = b"line\n") -> str:
    return client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


def denied(call, *args, **kwargs) -> bool:
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in ("AccessDenied", "403")
    return False


def test_partner_credentials_reach_only_their_own_prefix(seaweed):
    acme, globex, admin = seaweed.client(ACME), seaweed.client(GLOBEX), seaweed.client()
    # The documented upload (§3.1): own prefix, date folder, bucket-owner-full-control.
    acme.put_object(Bucket=SHARED, Key=f"acme/{DAY}/{NAME}", Body=b"a\n", ACL="bucket-owner-full-control")
    put(globex, SHARED, f"globex/{DAY}/{NAME}", b"g\n")

    for key in (f"globex/{DAY}/x.sync", f"acmex/{DAY}/x.sync", f"processed/acme/{DAY}/x.sync", "x.sync", "acme"):
        assert denied(acme.put_object, Bucket=SHARED, Key=key, Body=b"x"), key
    assert denied(acme.put_object, Bucket="blind", Key=f"acme/{DAY}/x.sync", Body=b"x")
    assert denied(acme.get_object, Bucket=SHARED, Key=f"globex/{DAY}/{NAME}")
    assert denied(acme.delete_object, Bucket=SHARED, Key=f"globex/{DAY}/{NAME}")
    assert denied(acme.list_objects_v2, Bucket=SHARED, Prefix="globex/")
    assert denied(acme.list_objects_v2, Bucket=SHARED)
    assert [o["Key"] for o in acme.list_objects_v2(Bucket=SHARED, Prefix="acme/")["Contents"]] == [f"acme/{DAY}/{NAME}"]
    assert acme.get_object(Bucket=SHARED, Key=f"acme/{DAY}/{NAME}")["Body"].read() == b"a\n"
    # Nothing of globex's was touched.
    assert admin.get_object(Bucket=SHARED, Key=f"globex/{DAY}/{NAME}")["Body"].read() == b"g\n"

    # The platform sees both uploads, each under its partner, and writes receipts a partner can read.
    z = zone(seaweed, SHARED)
    assert sorted((o.partner, o.pid, o.key) for o in z.list_objects()) == [
        ("acme", 7, f"acme/{DAY}/{NAME}"), ("globex", 8, f"globex/{DAY}/{NAME}"),
    ]
    key = z.put_back("acme", "2026-11-22", put_back_name(NAME, "receipt"), b"{}")
    assert acme.get_object(Bucket=SHARED, Key=key)["Body"].read() == b"{}"
    assert denied(globex.get_object, Bucket=SHARED, Key=key)


def test_lists_the_layout_and_logs_everything_else_once(seaweed, bucket, caplog):
    admin = seaweed.client()
    etag = put(admin, bucket, f"base/acme/{DAY}/{NAME}", b"abc\n")
    put(admin, bucket, f"base/globex/date=2026-11-21/{NAME}.gz", b"gz")
    junk = {
        f"base/mallory/{DAY}/{NAME}": "unknown partner",
        f"base/acme/date=2026-02-30/{NAME}": "not a calendar date",
        f"base/acme/2026-11-22/{NAME}": "is not date=YYYY-MM-DD",
        f"base/acme/{NAME}": "wrong depth",
        f"base/acme/{DAY}/nested/{NAME}": "wrong depth",
        "base/stray.sync": "wrong depth",
    }
    for key in junk:
        put(admin, bucket, key)
    put(admin, bucket, f"base/processed/acme/{DAY}/{NAME}")
    put(admin, bucket, f"base/acme/{DAY}/{put_back_name(NAME, 'rejects')}")
    put(admin, bucket, f"elsewhere/acme/{DAY}/{NAME}")  # outside the zone's prefix
    put(admin, bucket, f"base/acme/{DAY}/")  # a console "folder"

    z = zone(seaweed, bucket, "/base/")
    with caplog.at_level(logging.WARNING, logger="onramp.dropzone"):
        first = z.list_objects()
        second = z.list_objects()

    assert sorted((o.partner, o.pid, o.date, o.name) for o in first) == [
        ("acme", 7, "2026-11-22", NAME), ("globex", 8, "2026-11-21", f"{NAME}.gz"),
    ]
    assert first == second
    acme_obj = next(o for o in first if o.partner == "acme")
    assert (acme_obj.etag, acme_obj.size, acme_obj.key) == (etag, 4, f"base/acme/{DAY}/{NAME}")
    assert acme_obj.uri == f"s3://{bucket}/base/acme/{DAY}/{NAME}"
    messages = [r.getMessage() for r in caplog.records]
    for key, reason in junk.items():
        where = "base/mallory/" if "mallory" in key else key
        assert len([m for m in messages if where in m and reason in m]) == 1, (key, messages)
    assert not any("processed" in m or "rejects" in m or "elsewhere" in m for m in messages)


def test_fetch_downloads_exactly_the_listed_version(seaweed, bucket, tmp_path: Path):
    admin = seaweed.client()
    payload = bytes(range(256)) * 40_000  # ~10 MB, binary
    put(admin, bucket, f"acme/{DAY}/{NAME}.gz", payload)
    z = zone(seaweed, bucket)
    (obj,) = z.list_objects()
    local = z.fetch(obj, tmp_path / "work")
    assert local == tmp_path / "work" / f"{NAME}.gz"
    assert local.read_bytes() == payload

    put(admin, bucket, obj.key, b"replaced\n")
    with pytest.raises(DropObjectChanged):
        z.fetch(obj, tmp_path / "work")
    admin.delete_object(Bucket=bucket, Key=obj.key)
    with pytest.raises(DropObjectChanged):
        z.fetch(obj, tmp_path / "work")


def test_an_object_the_platform_cannot_read_is_a_rejected_file(seaweed, tmp_path: Path):
    admin = seaweed.client()
    put(admin, "blind", f"acme/{DAY}/{NAME}")
    put(admin, "blind", f"globex/{DAY}/{NAME}")
    z = zone(seaweed, "blind", client=seaweed.client(HALF_BLIND))
    objs = {o.partner: o for o in z.list_objects()}
    assert z.fetch(objs["acme"], tmp_path).read_bytes() == b"line\n"
    with pytest.raises(FileRejected, match="access denied") as err:
        z.fetch(objs["globex"], tmp_path / "g")
    assert "bucket-owner-full-control" in (err.value.hint or "")


def test_finish_archives_with_copy_and_delete(seaweed, bucket):
    admin = seaweed.client()
    put(admin, bucket, f"p/acme/{DAY}/{NAME}", b"ok\n")
    put(admin, bucket, f"p/acme/{DAY}/bad.name", b"??\n")
    z = zone(seaweed, bucket, "p")
    objs = {o.name: o for o in z.list_objects()}
    z.finish(objs[NAME], "processed")
    z.finish(objs["bad.name"], "rejected")
    keys = sorted(o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"p/processed/acme/{DAY}/{NAME}", f"p/rejected/acme/{DAY}/bad.name"]
    assert admin.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"ok\n"
    assert z.list_objects() == []
    z.finish(objs[NAME], "processed")  # retry after a crash: no-op

    # A version uploaded while the old one was processed is not archived with it.
    put(admin, bucket, f"p/acme/{DAY}/{NAME}", b"v1\n")
    (v1,) = z.list_objects()
    put(admin, bucket, v1.key, b"version 2\n")
    z.finish(v1, "processed")
    (v2,) = z.list_objects()
    assert v2.etag != v1.etag and v2.size == len(b"version 2\n")


def test_sweep_deletes_archived_objects_after_retention(seaweed, bucket):
    admin = seaweed.client()
    z = zone(seaweed, bucket)
    for name in ("a.sync", "b.sync", "c.sync"):
        put(admin, bucket, f"acme/{DAY}/{name}")
    objs = {o.name: o for o in z.list_objects()}
    z.finish(objs["a.sync"], "processed")
    z.finish(objs["b.sync"], "rejected")
    now = datetime.now(timezone.utc)
    assert z.sweep(now - timedelta(days=30)) == []  # archived just now: kept
    swept = z.sweep((now + timedelta(minutes=5)).replace(tzinfo=None))
    assert sorted(swept) == [f"processed/acme/{DAY}/a.sync", f"rejected/acme/{DAY}/b.sync"]
    remaining = [o["Key"] for o in admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert remaining == [f"acme/{DAY}/c.sync"]  # a waiting upload is never swept


def test_prod_and_beta_never_share_a_key_range(seaweed, bucket, tmp_path: Path):
    admin = seaweed.client()

    def settings(**dz) -> Settings:
        keys = {"s3_endpoint": seaweed.endpoint, "s3_access_key": "onramp-admin", "s3_secret_key": "onramp-admin-secret"}
        return Settings(data_dir=tmp_path, dropzone={"kind": "s3", **keys, **dz})

    split = settings(s3_bucket=bucket, s3_prefix="prod", s3_beta_bucket=bucket, s3_beta_prefix="beta")
    assert zone_location(split, "prod") == (bucket, "prod/")
    assert zone_location(split, "beta") == (bucket, "beta/")
    put(admin, bucket, f"beta/acme/{DAY}/{NAME}")
    prod, beta = open_dropzone(split, "prod", PARTNERS), open_dropzone(split, "beta", PARTNERS)
    assert prod.list_objects() == []
    assert [(o.key, beta.env) for o in beta.list_objects()] == [(f"beta/acme/{DAY}/{NAME}", "beta")]

    assert zone_location(settings(s3_bucket="clients"), "beta") == ("clients-beta", "")
    for overlapping in (settings(s3_bucket=bucket, s3_beta_bucket=bucket),
                        settings(s3_bucket=bucket, s3_prefix="", s3_beta_bucket=bucket, s3_beta_prefix="beta")):
        with pytest.raises(UsageError, match="overlap"):
            open_dropzone(overlapping, "prod", PARTNERS)
    with pytest.raises(UsageError, match="s3_bucket"):
        open_dropzone(settings(), "prod", PARTNERS)


def test_ftp_and_sftp_uploads_are_copied_into_the_s3_zone(seaweed, bucket, tmp_path: Path):
    """SPEC §3.1: FTP uploads are copied to S3 and then follow the same path."""
    z = zone(seaweed, bucket, "base")
    homes = tmp_path / "ftp-homes"
    accounts = {"acme": PartnerAccount("acme", "pw")}
    settings = Settings(data_dir=tmp_path / "data", ftp={"host": "127.0.0.1", "port": 0, "sftp_port": 0})

    def today() -> datetime:
        return datetime(2026, 11, 22, 10, 0)

    def ftp_upload(port: int, name: str, data: bytes) -> None:
        with ftplib.FTP() as ftp:
            ftp.connect("127.0.0.1", port, timeout=10)
            ftp.login("acme", "pw")
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))

    def s3_down(key: str, path: Path) -> None:
        raise OSError("S3 unreachable")

    payload = bytes(range(256)) * 50_000  # ~12 MB: a multipart upload to S3
    with start_ftp_server(settings, homes, accounts, clock=today, forward=z.receive) as server:
        ftp_upload(server.port, NAME, payload)
    with start_ftp_server(settings, homes, accounts, clock=today, forward=s3_down) as server:
        ftp_upload(server.port, "ftp_dpm_21_1234567891.sync", b"while S3 was down\n")
    assert [o.name for o in z.list_objects()] == [NAME]
    assert not (homes / "acme" / "ftp_dpm_21_1234567891.sync").exists()  # out of the home, staged

    # The next start sends what is staged (here the SFTP server, with its own staging).
    with start_ftp_server(settings, homes, accounts, clock=today, forward=z.receive):
        pass
    with start_sftp_server(settings, homes, accounts, clock=today, forward=z.receive):
        pass
    objs = {o.name: o for o in z.list_objects()}
    assert sorted(objs) == [NAME, "ftp_dpm_21_1234567891.sync"]
    assert {o.key for o in objs.values()} == {f"base/acme/{DAY}/{NAME}", f"base/acme/{DAY}/ftp_dpm_21_1234567891.sync"}
    assert z.fetch(objs[NAME], tmp_path / "work").read_bytes() == payload
    assert [p for p in homes.rglob("*") if p.is_file()] == []


API_TAXONOMY = """
partners:
  - {pid: 7, name: acme}
data_sources:
  - {dpid: 21, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
traits:
  - {sid: 101, name: a, data_source: 21, type: onboarded}
"""


def test_api_reprocesses_an_s3_upload_the_service_archived(seaweed, bucket, tmp_path: Path):
    """POST /api/v1/files/reprocess fetches an S3 upload from processed/ and checks it is
    the same file version (SHA-256) before running the job again."""
    import httpx

    from onramp.server.app import create_app
    from onramp.service.api_tokens import admin_token
    from onramp.service.ingest import run_job
    from onramp.testing.uvicorn_thread import serve_in_thread

    settings = service_settings(seaweed, tmp_path, bucket, taxonomy=API_TAXONOMY)
    key, body = f"acme/{DAY}/ftp_dpm_21_1700000000.sync", b"u1\td_sid=101\n"
    fetched = tmp_path / "ftp_dpm_21_1700000000.sync"
    fetched.write_bytes(body)
    uri = f"s3://{bucket}/{key}"
    run_job(settings, [fetched], uris={fetched: uri})  # as the service does after fetching
    fetched.unlink()
    admin = seaweed.client()
    put(admin, bucket, f"processed/{key}", body)  # where the service archived it

    headers = {"Authorization": f"Bearer {admin_token(settings)[0]}"}
    with serve_in_thread(create_app(settings)) as base:
        def reprocess() -> httpx.Response:
            return httpx.post(f"{base}/api/v1/files/reprocess", json={"name": fetched.name}, headers=headers, timeout=60)

        r = reprocess()
        assert r.status_code == 200, r.text
        (receipt,) = r.json()["receipts"]
        entry = receipt["files"][0]
        assert (entry["uri"], entry["duplicate"], entry["status"], receipt["stored_records"]) == (uri, False, "accepted", 1)
        put(admin, bucket, f"processed/{key}", b"u1\td_sid=102\n")
        changed = reprocess()
        assert changed.status_code == 409 and "changed" in changed.json()["detail"]["message"]
        admin.delete_object(Bucket=bucket, Key=f"processed/{key}")
        gone = reprocess()
        assert gone.status_code == 409 and "no longer" in gone.json()["detail"]["message"]
    assert not list((tmp_path / "data" / "tmp").glob("reprocess-*")), "downloads are cleaned up"


# -- the service (Watcher) over S3 (SPEC §3.1, §3.10, §6.1) ---------------------------------------
UUID = "12345678901234567890123456789012345678"  # platform UUIDs (data source 21: inbound_id_type platform_uuid)


def uuid_n(n: int) -> str:
    return f"{UUID[:-2]}{n:02d}"


def service_settings(seaweed, tmp_path: Path, bucket: str, identity: Identity | None = None, *,
                     taxonomy: str | None = None) -> Settings:
    """The settings `onramp serve` would run with (an S3 drop zone, no settle wait), over a
    store holding ``taxonomy`` (default: the watcher tests' partners acme=7, globex=8)."""
    from onramp.store.db import connect
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import load_taxonomy
    from onramp.testing.seaweed import admin_identity
    from tests.integration.test_serve_watcher import TAXONOMY

    ident = identity or admin_identity()
    settings = Settings(data_dir=tmp_path / "data", inbound={"settle_seconds": 0}, dropzone={
        "kind": "s3", "s3_endpoint": seaweed.endpoint, "s3_bucket": bucket,
        "s3_access_key": ident.key, "s3_secret_key": ident.secret})
    con = connect(settings)
    try:
        apply_taxonomy(con, load_taxonomy(taxonomy or TAXONOMY)[0])
    finally:
        con.close()
    return settings


def s3_watcher(settings: Settings, wrap=lambda zone: zone):
    """A Watcher over the prod S3 zone, built as `onramp serve` builds it (mail delivered to the outbox)."""
    from onramp.service.watcher import PartnerFolders, Watcher

    zone = wrap(open_dropzone(settings, "prod", PartnerFolders(settings)))
    return Watcher(settings, [zone], poll_seconds=0.05)


def upload(client, bucket: str, partner: str, name: str, lines: list[str]) -> str:
    """A partner upload as SPEC §3.1 documents it (own prefix, date folder, owner ACL)."""
    import gzip

    body = "".join(f"{line}\n" for line in lines).encode()
    key = f"{partner}/{DAY}/{name}"
    client.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body) if name.endswith(".gz") else body,
                      ACL="bucket-owner-full-control")
    return key


def s3_json(client, bucket: str, key: str) -> dict:
    import json

    return json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def keys_under(client, bucket: str, prefix: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"][len(prefix):] for o in listed)


def exists(client, bucket: str, key: str) -> bool:
    return key in {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])}


def store_rows(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    from onramp.store.db import connect

    con = connect(settings)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def restart(settings: Settings):
    """A fresh watcher (as after a restart) run until the zone is drained; returns it."""
    watcher = s3_watcher(settings)
    watcher.drain()
    watcher.close()
    return watcher


def crash_after_commit(settings: Settings, failing_step: str) -> None:
    """Run one job whose zone ``failing_step`` fails after the commit, then drop the watcher:
    what a `kill -9` between a job's commit and its last S3 write leaves behind."""
    crashed = s3_watcher(settings, wrap=lambda z: _Failing(z, failing_step, ConnectionError("S3 went away")))
    while crashed.jobs_run == 0:
        crashed.step()
    crashed.close()


class _Failing:
    """A real zone one of whose steps fails, as when S3 goes away or the service dies there."""

    def __init__(self, zone, step: str, error: Exception):
        self._zone, self._step, self._error = zone, step, error
        self.env = zone.env

    def __getattr__(self, name):
        if name == self._step:
            def fail(*args, **kwargs):
                raise self._error
            return fail
        return getattr(self._zone, name)


def test_the_watcher_processes_s3_uploads_and_answers_in_the_bucket(seaweed, tmp_path: Path):
    import gzip

    settings = service_settings(seaweed, tmp_path, SERVICE)
    acme, admin = seaweed.client(SERVICE_ACME), seaweed.client()
    good, bad, empty = "ftp_dpm_21_1700000000.sync", "ftp_dpm_21_1700000001.sync.gz", "ftp_dpm_21_1700000003.sync"
    split = ["ftp_dpm_21_1700000002.sync.1.gz", "ftp_dpm_21_1700000002.sync.2.gz"]
    upload(acme, SERVICE, "acme", good, [f"{uuid_n(1)}\t1", f"{uuid_n(2)}\t1"])
    upload(acme, SERVICE, "acme", bad, [f"{uuid_n(3)}\t1", "no tab here", f"{uuid_n(4)}\t2"])
    upload(acme, SERVICE, "acme", split[0], [f"{uuid_n(5)}\t1"])
    upload(acme, SERVICE, "acme", split[1], [f"{uuid_n(6)}\t1", f"{uuid_n(7)}\t1"])
    upload(acme, SERVICE, "acme", empty, [])  # a whole-file rejection (§3.3 check 6)

    watcher = s3_watcher(settings)
    watcher.drain()

    # One receipt per logical file, next to the upload, readable with the partner's own key.
    def receipt(base: str) -> dict:
        return s3_json(acme, SERVICE, f"acme/{DAY}/{base}.receipt.json")

    counters = ("records_received", "format_errors", "stored_records")
    r_good = receipt(good)
    assert [(f["name"], f["status"], f["uri"]) for f in r_good["files"]] == [(good, "accepted", f"s3://{SERVICE}/acme/{DAY}/{good}")]
    assert tuple(r_good[c] for c in counters) == (2, 0, 2)
    r_bad = receipt("ftp_dpm_21_1700000001.sync")
    assert tuple(r_bad[c] for c in counters) == (3, 1, 1)  # line 3: no trait for ic=2
    rejects = acme.get_object(Bucket=SERVICE, Key=f"acme/{DAY}/ftp_dpm_21_1700000001.sync.rejects.tsv.gz")
    assert b"no tab here" in gzip.decompress(rejects["Body"].read())
    r_split = receipt("ftp_dpm_21_1700000002.sync")
    assert [f["name"] for f in r_split["files"]] == split
    assert tuple(r_split[c] for c in counters) == (3, 0, 3)
    r_empty = receipt(empty)
    assert [(f["status"], f["reason"]) for f in r_empty["files"]] == [("rejected", "empty file")]

    # Originals archived by outcome; only Onramp's answers remain in the partner's folder.
    assert keys_under(admin, SERVICE, f"processed/acme/{DAY}/") == sorted([good, bad, *split])
    assert keys_under(admin, SERVICE, f"rejected/acme/{DAY}/") == [empty]
    assert keys_under(admin, SERVICE, f"acme/{DAY}/") == sorted(
        [f"{b}.receipt.json" for b in (good, "ftp_dpm_21_1700000001.sync", "ftp_dpm_21_1700000002.sync", empty)]
        + ["ftp_dpm_21_1700000001.sync.rejects.tsv.gz"])

    # Profiles committed, one stored receipt and one mail per logical file.
    realized = store_rows(settings, "SELECT id, sid FROM realizations WHERE env = 'prod' ORDER BY id")
    assert realized == [(uuid_n(n), 101) for n in (1, 2, 3, 5, 6, 7)]
    assert len(store_rows(settings, "SELECT receipt_id FROM receipts")) == 4
    assert len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == 4
    assert watcher.jobs_run == 4
    watcher.close()

    # A restart over the same store and bucket finds nothing to do again.
    assert restart(settings).jobs_run == 0 and len(store_rows(settings, "SELECT receipt_id FROM receipts")) == 4

    # A crash after the job's commit, before the move (here: the move fails and the process
    # is gone): the restart finishes the file from the ledger, with no second job.
    late = "ftp_dpm_21_1700000004.sync"
    upload(acme, SERVICE, "acme", late, [f"{uuid_n(8)}\t1"])
    crash_after_commit(settings, "finish")
    assert exists(admin, SERVICE, f"acme/{DAY}/{late}")  # still waiting
    admin.delete_object(Bucket=SERVICE, Key=f"acme/{DAY}/{late}.receipt.json")  # lost with the crash
    assert restart(settings).jobs_run == 0
    (stored,) = store_rows(settings, "SELECT receipt_id FROM files WHERE name = ?", [late])
    assert receipt(late)["receipt_id"] == stored[0]
    assert exists(admin, SERVICE, f"processed/acme/{DAY}/{late}") and not exists(admin, SERVICE, f"acme/{DAY}/{late}")
    assert len(store_rows(settings, "SELECT receipt_id FROM receipts")) == 5


def test_the_watcher_rejects_an_object_it_cannot_read_once(seaweed, tmp_path: Path, caplog):
    """SPEC §3.1: an object uploaded without bucket-owner-full-control is a rejected file with
    a receipt ("access denied"), not a job retried forever."""
    bucket = "blind-svc"
    settings = service_settings(seaweed, tmp_path, bucket, SERVICE_BLIND)  # may read acme's objects only
    admin = seaweed.client()
    readable, unreadable = "ftp_dpm_21_1700000000.sync", "ftp_dpm_31_1700000000.sync"
    upload(admin, bucket, "acme", readable, [f"{uuid_n(1)}\t1"])
    upload(admin, bucket, "globex", unreadable, [f"{uuid_n(2)}\t1"])

    watcher = s3_watcher(settings)
    with caplog.at_level(logging.WARNING, logger="onramp.watcher"):
        watcher.drain()
        for _ in range(5):  # later scans: the unreadable object is not processed again
            watcher.step()
    watcher.close()

    r = s3_json(admin, bucket, f"globex/{DAY}/{unreadable}.receipt.json")
    assert (r["kind"], r["partner"], r["dpid"], r["records_received"]) == ("data", 8, 31, 0)
    assert r["files"] == [{"name": unreadable, "uri": f"s3://{bucket}/globex/{DAY}/{unreadable}",
                           "status": "rejected", "reason": "access denied", "duplicate": False}]
    assert store_rows(settings, "SELECT status, reason, sha256 FROM files WHERE name = ?", [unreadable]) == [
        ("rejected", "access denied", "")]
    assert watcher.jobs_run == 2 and len(list((tmp_path / "data" / "outbox").glob("*.eml"))) == 2
    # The readable neighbour went its normal way.
    assert keys_under(admin, bucket, f"processed/acme/{DAY}/") == [readable]
    # A copy needs read access too: the object stays in place, said once, and is skipped.
    assert keys_under(admin, bucket, f"globex/{DAY}/") == [unreadable, f"{unreadable}.receipt.json"]
    assert keys_under(admin, bucket, "rejected/") == []
    stuck = [m.getMessage() for m in caplog.records if "cannot be archived" in m.getMessage()]
    assert len(stuck) == 1 and "bucket-owner-full-control" in stuck[0]
    assert not [m for m in caplog.records if "not processed (attempt" in m.getMessage()]

    # A crash between the commit and writing the receipt back: the restart settles the file
    # from the ledger although it cannot read it (no hash), without a second job.
    admin.delete_object(Bucket=bucket, Key=f"globex/{DAY}/{unreadable}")  # the operator follows the hint
    second = "ftp_dpm_31_1700000001.sync"
    upload(admin, bucket, "globex", second, [f"{uuid_n(3)}\t1"])
    crash_after_commit(settings, "put_back")
    assert not exists(admin, bucket, f"globex/{DAY}/{second}.receipt.json")
    assert restart(settings).jobs_run == 0
    assert s3_json(admin, bucket, f"globex/{DAY}/{second}.receipt.json")["files"][0]["reason"] == "access denied"
    assert len(store_rows(settings, "SELECT receipt_id FROM files WHERE name = ?", [second])) == 1
    assert not list((tmp_path / "data" / "inflight").iterdir())


def test_a_transient_s3_error_is_retried_not_rejected(seaweed, bucket, tmp_path: Path):
    settings = service_settings(seaweed, tmp_path, bucket)
    admin = seaweed.client()
    name = "ftp_dpm_21_1700000000.sync"
    upload(admin, bucket, "acme", name, [f"{uuid_n(1)}\t1"])
    down = s3_watcher(settings, wrap=lambda z: _Failing(z, "fetch", ConnectionError("S3 unreachable")))
    for _ in range(5):
        down.step()
    down.close()
    assert down.jobs_run == 0 and store_rows(settings, "SELECT name FROM files") == []
    assert keys_under(admin, bucket, f"acme/{DAY}/") == [name]  # no receipt, not moved

    restart(settings)
    assert s3_json(admin, bucket, f"acme/{DAY}/{name}.receipt.json")["stored_records"] == 1


def test_failed_ftp_forwards_are_sent_once_s3_is_back_without_a_restart(seaweed, bucket, tmp_path: Path):
    """SPEC §3.1: FTP uploads are copied to S3; an S3 outage delays the copy, it needs no restart."""
    import dataclasses
    import time

    from tests.support.tcp_gate import Gate

    host, port = seaweed.endpoint.removeprefix("http://").split(":")
    gate = Gate((host, int(port)))  # closed: S3 is down (connection refused)
    z = zone(seaweed, bucket, client=dataclasses.replace(seaweed, endpoint=f"http://{gate.address}").client())
    homes = tmp_path / "ftp-homes"
    settings = Settings(data_dir=tmp_path / "data", ftp={"host": "127.0.0.1", "port": 0, "forward_retry_seconds": 0.2})
    accounts = {"acme": PartnerAccount("acme", "pw")}
    name = "ftp_dpm_21_1234567891.sync"
    try:
        with start_ftp_server(settings, homes, accounts, clock=lambda: datetime(2026, 11, 22, 10, 0), forward=z.receive) as server:
            with ftplib.FTP() as ftp:
                ftp.connect("127.0.0.1", server.port, timeout=10)
                ftp.login("acme", "pw")
                ftp.storbinary(f"STOR {name}", io.BytesIO(b"sent while S3 was down\n"))
            time.sleep(1.0)  # the first copy and a few retries fail meanwhile
            staged = homes / ".forwarding-ftp"
            assert [p.relative_to(p.parents[2]).as_posix() for p in staged.rglob(name)] == [f"acme/{DAY}/{name}"]
            assert zone(seaweed, bucket).list_objects() == []

            gate.open()  # S3 is back
            deadline = time.monotonic() + 15
            while not zone(seaweed, bucket).list_objects() and time.monotonic() < deadline:
                time.sleep(0.1)
            objs = zone(seaweed, bucket).list_objects()
            assert [o.key for o in objs] == [f"acme/{DAY}/{name}"]
            assert z.fetch(objs[0], tmp_path / "work").read_bytes() == b"sent while S3 was down\n"
            assert [p for p in staged.rglob("*") if p.is_file()] == []
    finally:
        gate.close()
