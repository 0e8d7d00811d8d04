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
from onramp.transports.dropzone import DropObjectChanged, open_dropzone
from onramp.transports.ftp_server import start_ftp_server
from onramp.transports.layout import put_back_name
from onramp.transports.partner_homes import PartnerAccount
from onramp.transports.s3 import S3DropZone, zone_location
from onramp.transports.sftp_server import start_sftp_server
from tests.support.seaweed import Identity, partner_identity, start_seaweed

PARTNERS = {"acme": 7, "globex": 8}
DAY = "date=2026-11-22"
NAME = "ftp_dpm_21_1234567890.sync"
SHARED = "drop"  # the bucket the partner identities are scoped to
ACME = partner_identity("acme", SHARED)
GLOBEX = partner_identity("globex", SHARED)
# A platform key that may list everything but read only acme's objects: stands in for
# an object uploaded without bucket-owner-full-control (§3.1).
HALF_BLIND = Identity("half-blind", ["List:blind", "Read:blind/acme/*", "Write:blind"])


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    with start_seaweed(tmp_path_factory.mktemp("seaweed"), [ACME, GLOBEX, HALF_BLIND]) as server:
        for bucket in (SHARED, "blind"):
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
    from onramp.store.db import connect
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import load_taxonomy
    from onramp.testing.uvicorn_thread import serve_in_thread
    from tests.support.seaweed import admin_identity

    ident = admin_identity()
    settings = Settings(data_dir=tmp_path / "data", dropzone={
        "kind": "s3", "s3_endpoint": seaweed.endpoint, "s3_bucket": bucket,
        "s3_access_key": ident.key, "s3_secret_key": ident.secret})
    con = connect(settings)
    try:
        apply_taxonomy(con, load_taxonomy(API_TAXONOMY)[0])
    finally:
        con.close()
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
