"""Settling logical files (service.watcher's pure half, SPEC §3.10): quiet time, `.info`, grouping."""

from __future__ import annotations

import pytest

from onramp.errors import UsageError
from onramp.formats.info_file import InvalidInfoFile, parse_info, render_info
from onramp.service.settle import LogicalFile, SettleTracker, check_schedule, logical_base, next_fire
from onramp.transports.dropzone import DropObject

T0 = 1_800_000_000.0
DAY = "2026-11-22"


def obj(name: str, size: int = 10, mtime: float = T0, partner: str = "acme", date: str = DAY) -> DropObject:
    return DropObject(partner=partner, date=date, name=name, key=f"{partner}/date={date}/{name}", size=size, mtime=mtime, pid=7)


def ready_bases(observation) -> list[str]:
    return sorted(lf.base for lf in observation.ready)


def test_split_parts_form_one_logical_file():
    assert logical_base("ftp_dpm_21_1700000000.sync.1.gz") == logical_base("ftp_dpm_21_1700000000.sync.2.gz") \
        == "ftp_dpm_21_1700000000.sync"
    assert logical_base("adobe_id_0_21_1700000000.sync.3") == "adobe_id_0_21_1700000000.sync"
    assert logical_base("garbage.txt") == "garbage.txt"  # processed alone, rejected with a receipt
    t = SettleTracker(30)
    seen = t.observe("prod", [obj("ftp_dpm_21_1700000000.sync.1.gz"), obj("ftp_dpm_21_1700000000.sync.2.gz"),
                              obj("ftp_dpm_21_1700000001.sync")], {}, T0 + 31, initial=True)
    parts = {lf.base: [p.name for p in lf.parts] for lf in seen.ready}
    assert parts == {"ftp_dpm_21_1700000000.sync": ["ftp_dpm_21_1700000000.sync.1.gz", "ftp_dpm_21_1700000000.sync.2.gz"],
                     "ftp_dpm_21_1700000001.sync": ["ftp_dpm_21_1700000001.sync"]}


def test_same_base_in_other_folders_or_partners_are_separate_files():
    t = SettleTracker(0)
    seen = t.observe("prod", [obj("ftp_dpm_21_1700000000.sync"), obj("ftp_dpm_21_1700000000.sync", date="2026-11-23"),
                              obj("ftp_dpm_21_1700000000.sync", partner="other")], {}, T0, initial=True)
    assert sorted(lf.key for lf in seen.ready) == [
        ("prod", "acme", "2026-11-22", "ftp_dpm_21_1700000000.sync"),
        ("prod", "acme", "2026-11-23", "ftp_dpm_21_1700000000.sync"),
        ("prod", "other", "2026-11-22", "ftp_dpm_21_1700000000.sync"),
    ]


def test_files_uploaded_while_down_are_ready_on_the_first_scan():
    t = SettleTracker(30)
    assert ready_bases(t.observe("prod", [obj("ftp_dpm_21_1700000000.sync", mtime=T0 - 3600)], {}, T0, initial=True)) \
        == ["ftp_dpm_21_1700000000.sync"]


def test_a_file_seen_arriving_waits_for_the_settle_window():
    t = SettleTracker(30)
    assert t.observe("prod", [], {}, T0, initial=True).ready == []
    # Appears with an old modification time (e.g. `cp -p`): the watcher's own sighting counts.
    f = obj("ftp_dpm_21_1700000000.sync", mtime=T0 - 3600)
    seen = t.observe("prod", [f], {}, T0 + 1)
    assert seen.ready == [] and seen.waiting == 1
    assert t.observe("prod", [f], {}, T0 + 30).ready == []
    assert ready_bases(t.observe("prod", [f], {}, T0 + 31)) == ["ftp_dpm_21_1700000000.sync"]


def test_a_growing_or_new_part_restarts_the_clock():
    t = SettleTracker(30)
    p1 = obj("ftp_dpm_21_1700000000.sync.1", size=10, mtime=T0)
    t.observe("prod", [p1], {}, T0, initial=True)
    grown = obj("ftp_dpm_21_1700000000.sync.1", size=20, mtime=T0 + 20)
    assert t.observe("prod", [grown], {}, T0 + 25).ready == []
    p2 = obj("ftp_dpm_21_1700000000.sync.2", size=5, mtime=T0 + 40)
    assert t.observe("prod", [grown, p2], {}, T0 + 55).ready == []  # first seen 15 s after it was written
    assert t.observe("prod", [grown, p2], {}, T0 + 84).ready == []  # quiet counts from the later of the two
    (lf,) = t.observe("prod", [grown, p2], {}, T0 + 85).ready
    assert [p.name for p in lf.parts] == ["ftp_dpm_21_1700000000.sync.1", "ftp_dpm_21_1700000000.sync.2"]


def test_info_listing_every_part_makes_the_file_ready_at_once():
    t = SettleTracker(30)
    parts = [obj("ftp_dpm_21_1700000000.sync.1.gz", size=5, mtime=T0), obj("ftp_dpm_21_1700000000.sync.2.gz", size=4, mtime=T0)]
    info_body = render_info([(parts[0].name, b"12345", 1), (parts[1].name, b"1234", 1)], "ftp_dpm_21_1700000000.sync")
    info = obj("ftp_dpm_21_1700000000.info", size=len(info_body), mtime=T0)
    infos = {info.key: parse_info(info_body)}
    # Only part 1 so far: the .info says to wait for part 2.
    assert t.observe("prod", [parts[0], info], infos, T0 + 1).ready == []
    # Part 2 still growing (size differs from the listed 4 bytes): not yet.
    partial = obj(parts[1].name, size=2, mtime=T0 + 1)
    assert t.observe("prod", [parts[0], partial, info], infos, T0 + 2).ready == []
    (lf,) = t.observe("prod", [*parts, info], infos, T0 + 3).ready
    assert lf.info == info and len(lf.parts) == 2


def test_info_does_not_hold_back_a_settled_file_and_travels_with_it():
    t = SettleTracker(30)
    part = obj("ftp_dpm_21_1700000000.sync.1", mtime=T0)
    listed = parse_info(render_info([(part.name, b"x" * 10, 1), ("ftp_dpm_21_1700000000.sync.2", b"y", 1)], "t"))
    info = obj("ftp_dpm_21_1700000000.info", mtime=T0)
    (lf,) = t.observe("prod", [part, info], {info.key: listed}, T0 + 30, initial=True).ready
    assert lf.info == info  # quiet for the settle window: "or" in §3.10


def test_stray_infos_are_reported_once_quiet():
    t = SettleTracker(30)
    orphan = obj("ftp_dpm_21_1700000000.info", mtime=T0)
    broken = obj("ftp_dpm_21_1700000001.info", mtime=T0)
    mixed = obj("ftp_dpm_21_1700000002.info", mtime=T0)
    infos = {
        orphan.key: parse_info(render_info([("ftp_dpm_21_1700000000.sync", b"", 0)], "x")),
        broken.key: InvalidInfoFile("not JSON", hint="h"),
        mixed.key: parse_info(render_info([("ftp_dpm_21_1700000002.sync", b"", 0), ("ftp_dpm_21_1700000003.sync", b"", 0)], "x")),
    }
    assert t.observe("prod", [orphan, broken, mixed], infos, T0 + 10, initial=True).stray_infos == []
    strays = dict((o.name, reason) for o, reason in t.observe("prod", [orphan, broken, mixed], infos, T0 + 30).stray_infos)
    assert strays[orphan.name] is None  # its parts were processed already: just archived
    assert "not JSON" in strays[broken.name]
    assert "several logical files" in strays[mixed.name]


def test_order_puts_id_sync_files_first_then_timestamps():
    def lf(name):
        return LogicalFile("prod", "acme", DAY, logical_base(name), (obj(name),))

    files = [lf("ftp_dpm_21_1700000002.sync"), lf("adobe_id_0_21_1700000009.sync"), lf("junk.txt"), lf("ftp_dpm_21_1700000001.overwrite")]
    assert [f.base for f in sorted(files, key=LogicalFile.order)] == [
        "adobe_id_0_21_1700000009.sync", "ftp_dpm_21_1700000001.overwrite", "ftp_dpm_21_1700000002.sync", "junk.txt"]


def test_environments_are_tracked_apart():
    t = SettleTracker(30)
    f = obj("ftp_dpm_21_1700000000.sync", mtime=T0)
    t.observe("prod", [f], {}, T0, initial=True)
    t.observe("beta", [], {}, T0 + 1)  # beta's scan must not forget prod's files
    assert t.current(("prod", "acme", DAY, "ftp_dpm_21_1700000000.sync")) is not None


def test_schedule():
    assert check_schedule("continuous") is None
    assert check_schedule("30 0,12 * * *") == "30 0,12 * * *"
    with pytest.raises(UsageError) as err:
        check_schedule("twice a day")
    assert "cron" in err.value.message and "minute hour" in err.value.hint
    # 2027-01-15 08:00:00 UTC -> next 12:30 the same day
    assert next_fire("30 0,12 * * *", 1_800_000_000 - 1_800_000_000 % 86400 + 8 * 3600) \
        == 1_800_000_000 - 1_800_000_000 % 86400 + 12 * 3600 + 1800
