"""The drop-zone layout grammar (SPEC §3.1, [D-19]) as a table."""

from __future__ import annotations

from datetime import date

import pytest

from onramp.transports.layout import (
    DropKey,
    Ignored,
    archive_key,
    dated_key,
    parse_key,
    put_back_key,
    put_back_name,
)
from onramp.transports.partner_homes import may_write, virtual_depth

IN_LAYOUT = [
    ("acme/date=2026-11-22/ftp_dpm_21_1234567890.sync", DropKey("acme", "2026-11-22", "ftp_dpm_21_1234567890.sync")),
    ("7/date=2024-02-29/adobe_id_21_1234567890.sync.gz", DropKey("7", "2024-02-29", "adobe_id_21_1234567890.sync.gz")),
    ("acme/date=2026-11-22/anything-else.txt", DropKey("acme", "2026-11-22", "anything-else.txt")),  # rejected later, by name
]

IGNORED = [
    ("acme/date=2026-02-30/f.sync", "not a calendar date", False),
    ("acme/date=2026-1-2/f.sync", "not a calendar date", False),
    ("acme/date=/f.sync", "not a calendar date", False),
    ("acme/2026-11-22/f.sync", "is not date=YYYY-MM-DD", False),
    ("acme/f.sync", "wrong depth", False),
    ("f.sync", "wrong depth", False),
    ("acme/date=2026-11-22/sub/f.sync", "wrong depth", False),
    ("acme//date=2026-11-22/f.sync", "empty path segment", False),
    ("acme/date=2026-11-22/", "empty path segment", False),
    ("processed/acme/date=2026-11-22/f.sync", "archive", True),
    ("rejected/acme/date=2026-11-22/f.sync", "archive", True),
    ("acme/date=2026-11-22/f.sync.receipt.json", "written back", True),
    ("acme/date=2026-11-22/f.sync.rejects.tsv.gz", "written back", True),
    ("acme/date=2026-11-22/.f.sync.123.tmp", "hidden or partial", True),
    ("acme/f.sync.filepart", "upload in progress", True),
]


@pytest.mark.parametrize(("rel", "expected"), IN_LAYOUT)
def test_keys_in_the_layout(rel, expected):
    assert parse_key(rel) == expected
    assert expected.key == rel


@pytest.mark.parametrize(("rel", "reason", "quiet"), IGNORED)
def test_keys_outside_the_layout_are_ignored_with_a_reason(rel, reason, quiet):
    result = parse_key(rel)
    assert isinstance(result, Ignored)
    assert reason in result.reason
    assert result.quiet is quiet


def test_put_back_names_are_never_listed_and_must_be_marked():
    name = put_back_name("ftp_dpm_21_1234567890.sync", "receipt")
    assert put_back_key("acme", "2026-11-22", name) == "acme/date=2026-11-22/ftp_dpm_21_1234567890.sync.receipt.json"
    assert isinstance(parse_key(put_back_key("acme", "2026-11-22", name)), Ignored)
    with pytest.raises(ValueError, match="put_back_name"):
        put_back_key("acme", "2026-11-22", "ftp_dpm_21_1234567890.sync")
    for partner, day in [("../x", "2026-11-22"), ("acme", "2026-13-01"), ("", "2026-11-22")]:
        with pytest.raises(ValueError, match="not a <partner>"):
            put_back_key(partner, day, name)


def test_archive_and_dated_keys():
    assert archive_key("processed", "acme/date=2026-11-22/f") == "processed/acme/date=2026-11-22/f"
    assert archive_key("rejected", "acme/date=2026-11-22/f") == "rejected/acme/date=2026-11-22/f"
    with pytest.raises(ValueError):
        archive_key("deleted", "acme/date=2026-11-22/f")
    assert dated_key("acme", date(2026, 11, 22), "f.sync") == "acme/date=2026-11-22/f.sync"


@pytest.mark.parametrize(
    ("vpath", "depth", "writable"),
    [
        ("/", 0, False),
        ("/f.sync", 1, True),
        ("f.sync", 1, True),
        ("/date=2026-11-22/f.sync", 2, False),
        ("/../../globex/f.sync", 2, False),
        ("../f.sync", 1, True),  # '..' above the home root is the home root (chroot)
        ("/f.sync.receipt.json", 1, False),
    ],
)
def test_partners_write_only_at_their_home_root(vpath, depth, writable):
    assert virtual_depth(vpath) == depth
    assert may_write(vpath) is writable
