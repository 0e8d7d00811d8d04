"""The local-directory drop zone on a real disk (SPEC §3.1, §9.1)."""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from onramp.settings import Settings
from onramp.transports.dropzone import DropObjectChanged, local_zone_root, open_dropzone
from onramp.transports.layout import put_back_name
from onramp.transports.local import LocalDropZone

PARTNERS = {"acme": 7, "globex": 8}
DAY = "date=2026-11-22"
NAME = "ftp_dpm_21_1234567890.sync"


def put(root: Path, rel: str, data: bytes = b"line\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def zone(tmp_path: Path) -> LocalDropZone:
    return LocalDropZone(tmp_path / "zone", "prod", PARTNERS)


def test_lists_only_uploads_of_known_partners_in_the_layout(zone: LocalDropZone, tmp_path: Path, caplog):
    root = zone.root
    put(root, f"acme/{DAY}/{NAME}", b"a\n")
    put(root, f"globex/date=2026-11-21/{NAME}.gz", b"gz")
    junk = {
        f"mallory/{DAY}/{NAME}": "unknown partner",
        f"acme/date=2026-02-30/{NAME}": "not a calendar date",
        f"acme/2026-11-22/{NAME}": "is not date=YYYY-MM-DD",
        f"acme/{NAME}": "wrong depth",
        f"acme/{DAY}/nested/{NAME}": "folder below date=",
        "stray.txt": "wrong depth",
    }
    for rel in junk:
        put(root, rel)
    put(root, f"processed/acme/{DAY}/{NAME}")  # archive: never listed, no warning
    put(root, f"acme/{DAY}/{put_back_name(NAME, 'receipt')}")  # our own receipt
    outside = put(tmp_path, "outside/secret.sync", b"secret")
    os.symlink(outside, root / f"acme/{DAY}/linked.sync")
    os.symlink(root / "globex", root / "acme-alias")

    with caplog.at_level(logging.WARNING, logger="onramp.dropzone"):
        first = zone.list_objects()
        second = zone.list_objects()

    assert [(o.partner, o.pid, o.date, o.name, o.key) for o in first] == [
        ("acme", 7, "2026-11-22", NAME, f"acme/{DAY}/{NAME}"),
        ("globex", 8, "2026-11-21", f"{NAME}.gz", f"globex/date=2026-11-21/{NAME}.gz"),
    ]
    assert first == second
    assert first[0].size == 2 and first[0].uri == (root / f"acme/{DAY}/{NAME}").absolute().as_uri()
    warnings = [r.getMessage() for r in caplog.records]
    for rel, reason in junk.items():
        where = "mallory/" if rel.startswith("mallory") else ("acme/" + DAY + "/nested/" if "nested" in rel else rel)
        hits = [m for m in warnings if where in m and reason in m]
        assert len(hits) == 1, (rel, warnings)  # logged, and only once across two listings
    assert any("linked.sync" in m and "symbolic link" in m for m in warnings)
    assert any("acme-alias" in m and "symbolic link" in m for m in warnings)
    assert not any("processed" in m or "receipt" in m for m in warnings)


def test_partners_are_asked_again_on_every_listing(tmp_path: Path):
    known = dict(PARTNERS)
    zone = LocalDropZone(tmp_path / "zone", "prod", lambda: known)
    put(zone.root, f"initech/{DAY}/{NAME}")
    assert zone.list_objects() == []
    known["initech"] = 9
    assert [(o.partner, o.pid) for o in zone.list_objects()] == [("initech", 9)]


def test_finish_moves_to_processed_or_rejected_keeping_the_path(zone: LocalDropZone):
    put(zone.root, f"acme/{DAY}/{NAME}", b"ok\n")
    put(zone.root, f"acme/{DAY}/bad.name", b"??\n")
    good, bad = sorted(zone.list_objects(), key=lambda o: o.name != NAME)
    zone.finish(good, "processed")
    zone.finish(bad, "rejected")
    assert (zone.root / f"processed/acme/{DAY}/{NAME}").read_bytes() == b"ok\n"
    assert (zone.root / f"rejected/acme/{DAY}/bad.name").read_bytes() == b"??\n"
    assert not (zone.root / good.key).exists() and not (zone.root / bad.key).exists()
    assert zone.list_objects() == []
    zone.finish(good, "processed")  # a retry after a crash is a no-op
    assert sorted(p.name for p in (zone.root / f"processed/acme/{DAY}").iterdir()) == [NAME]

    # The same name uploaded and processed again is archived beside the first one.
    put(zone.root, f"acme/{DAY}/{NAME}", b"ok again\n")
    (again,) = zone.list_objects()
    zone.finish(again, "processed")
    assert (zone.root / f"processed/acme/{DAY}/{NAME}~1").read_bytes() == b"ok again\n"


def test_a_file_replaced_while_processing_stays_for_the_next_run(zone: LocalDropZone, tmp_path: Path):
    path = put(zone.root, f"acme/{DAY}/{NAME}", b"v1\n")
    (obj,) = zone.list_objects()
    assert zone.fetch(obj, tmp_path / "work") == path  # no copy on a local disk
    put(zone.root, obj.key, b"version 2\n")
    with pytest.raises(DropObjectChanged, match="changed since it was listed"):
        zone.fetch(obj, tmp_path / "work")
    zone.finish(obj, "processed")
    assert path.read_bytes() == b"version 2\n"
    assert not (zone.root / "processed").exists()
    path.unlink()
    with pytest.raises(DropObjectChanged, match="no longer in the drop zone"):
        zone.fetch(obj, tmp_path / "work")


def test_receipts_are_written_next_to_the_upload_and_not_listed(zone: LocalDropZone):
    put(zone.root, f"acme/{DAY}/{NAME}")
    (obj,) = zone.list_objects()
    key = zone.put_back(obj.partner, obj.date, put_back_name(obj.name, "receipt"), b'{"ok": true}')
    assert key == f"acme/{DAY}/{NAME}.receipt.json"
    assert (zone.root / key).read_bytes() == b'{"ok": true}'
    assert [o.key for o in zone.list_objects()] == [obj.key]
    assert sorted(p.name for p in (zone.root / f"acme/{DAY}").iterdir()) == [NAME, f"{NAME}.receipt.json"]
    with pytest.raises(ValueError, match="put_back_name"):
        zone.put_back("acme", "2026-11-22", "ftp_dpm_21_1234567891.sync", b"would be processed")
    with pytest.raises(ValueError):
        zone.put_back("../globex", "2026-11-22", put_back_name(NAME, "receipt"), b"x")


def test_sweep_deletes_archived_files_after_retention(tmp_path: Path):
    now = [datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp()]
    zone = LocalDropZone(tmp_path / "zone", "prod", PARTNERS, clock=lambda: now[0])
    put(zone.root, f"acme/{DAY}/old.sync")
    zone.finish(zone.list_objects()[0], "rejected")
    now[0] += 20 * 86400
    put(zone.root, f"acme/{DAY}/new.sync")
    zone.finish(zone.list_objects()[0], "processed")
    waiting = put(zone.root, f"acme/{DAY}/waiting.sync")

    cutoff = datetime.fromtimestamp(now[0], timezone.utc) - timedelta(days=10)
    assert zone.sweep(cutoff.replace(tzinfo=None)) == [f"rejected/acme/{DAY}/old.sync"]
    assert (zone.root / f"processed/acme/{DAY}/new.sync").exists()
    assert waiting.exists()  # uploads not yet handled are never swept


def test_prod_and_beta_zones_are_separate_folders(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    prod = open_dropzone(settings, "prod", PARTNERS)
    beta = open_dropzone(settings, "beta", PARTNERS)
    assert local_zone_root(settings, "prod") == tmp_path / "data/dropzone/prod"
    assert local_zone_root(settings, "beta") == tmp_path / "data/dropzone/beta"
    put(local_zone_root(settings, "beta"), f"acme/{DAY}/{NAME}")
    assert prod.list_objects() == []
    assert [(o.key, beta.env) for o in beta.list_objects()] == [(f"acme/{DAY}/{NAME}", "beta")]

    moved = Settings(data_dir=tmp_path / "data", dropzone={"path": tmp_path / "zones"})
    assert local_zone_root(moved, "beta") == tmp_path / "zones/beta"
    from onramp.errors import UsageError

    with pytest.raises(UsageError, match="prod' or 'beta"):
        open_dropzone(settings, "staging", PARTNERS)
    with pytest.raises(UsageError, match="dropzone.kind"):
        open_dropzone(Settings(data_dir=tmp_path, dropzone={"kind": "ftp"}), "prod", PARTNERS)
