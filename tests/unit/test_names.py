"""Golden table for the inbound file-name grammars (SPEC §2.3.1, §3.2, §3.2.1).

Every valid and invalid example of the spec appears here, tagged with its section.
"""

from __future__ import annotations

import pytest

from onramp.errors import InvalidFileName
from onramp.formats.names import DataFileName, SyncFileName, parse_file_name


def data(odc, dpid, target, timestamp, mode, split, suffix):
    return ("data", odc, dpid, target, timestamp, mode, split, suffix)


def sync(prefix, dpids, timestamp, split, suffix):
    return ("sync", prefix, dpids, timestamp, split, suffix)


def components(parsed: DataFileName | SyncFileName) -> tuple:
    if isinstance(parsed, DataFileName):
        return data(parsed.odc, parsed.dpid, parsed.target, parsed.timestamp, parsed.mode, parsed.split, parsed.suffix)
    return sync(parsed.prefix, parsed.dpids, parsed.timestamp, parsed.split, parsed.suffix)


VALID = [
    # §3.2 valid examples
    ("ftp_dpm_478_1366545717.sync.1.gz", data(False, 478, None, 1366545717, "sync", 1, "gz")),
    ("ftp_dpm_478_1366545717.sync.2.gz", data(False, 478, None, 1366545717, "sync", 2, "gz")),
    ("ftp_dpm_478_1366545717.sync", data(False, 478, None, 1366545717, "sync", None, None)),
    ("ftp_dpm_478_1366545717.overwrite", data(False, 478, None, 1366545717, "overwrite", None, None)),
    ("ftp_dpm_478_567_1366545717.sync.gz", data(False, 478, 567, 1366545717, "sync", None, "gz")),
    ("ftp_dpm_20914_21_1234567890.sync", data(False, 20914, 21, 1234567890, "sync", None, None)),
    ("ftp_dpm_121963_21_1234567890.sync", data(False, 121963, 21, 1234567890, "sync", None, None)),
    ("ftp_dpm_100_1234567890.sync.pgp", data(False, 100, None, 1234567890, "sync", None, "pgp")),
    ("ftp_dpm_100_1234567890.overwrite.gpg", data(False, 100, None, 1234567890, "overwrite", None, "gpg")),
    # §3.3.2: PGP after the optional split
    ("ftp_dpm_100_1234567890.sync.2.pgp", data(False, 100, None, 1234567890, "sync", 2, "pgp")),
    # §3.2 listed as invalid, but only by §3.2.2 (global DPID without target): the name grammar
    # accepts it and the authorization check rejects the file.
    ("ftp_dpm_20914_1234567890.sync", data(False, 20914, None, 1234567890, "sync", None, None)),
    # §3.2.1 ODC
    ("ftp_dpm_odc_21_1366545717.sync", data(True, 21, None, 1366545717, "sync", None, None)),
    ("ftp_dpm_odc_21_55_1366545717.overwrite.2.gz", data(True, 21, 55, 1366545717, "overwrite", 2, "gz")),
    # §2.3.1 valid examples
    ("adobe_id_111_222_333_444_1454442149.sync", sync("adobe_id_", (111, 222, 333, 444), 1454442149, None, None)),
    ("adobe_id_123_898_456_1454442149.sync.1.gz", sync("adobe_id_", (123, 898, 456), 1454442149, 1, "gz")),
    ("adobe_id_123_898_456_1454442149.sync.2.gz", sync("adobe_id_", (123, 898, 456), 1454442149, 2, "gz")),
    ("c2c_id_123_898_1454442149.sync.gz", sync("c2c_id_", (123, 898), 1454442149, None, "gz")),
    ("adobe_id_0_12345_1476312152.sync", sync("adobe_id_", (0, 12345), 1476312152, None, None)),
    # §2.3.3 worked example, D-14 PGP for sync files
    ("adobe_id_12345_67890_1477846458.sync", sync("adobe_id_", (12345, 67890), 1477846458, None, None)),
    ("adobe_id_0_12345_1476312152.sync.3.gpg", sync("adobe_id_", (0, 12345), 1476312152, 3, "gpg")),
    ("c2c_id_123_898_1454442149.sync.pgp", sync("c2c_id_", (123, 898), 1454442149, None, "pgp")),
    # edges of the grammar
    ("ftp_dpm_2147483647_1_0000000000.sync", data(False, 2147483647, 1, 0, "sync", None, None)),
    ("ftp_dpm_1_9999999999.sync.0", data(False, 1, None, 9999999999, "sync", 0, None)),
    ("ftp_dpm_1_1234567890.sync.007.gz", data(False, 1, None, 1234567890, "sync", 7, "gz")),
    ("adobe_id_0_0_1234567890.sync", sync("adobe_id_", (0, 0), 1234567890, None, None)),
    ("ftp_dpm_6_6_1700000000.sync", data(False, 6, 6, 1700000000, "sync", None, None)),
]

INVALID = [
    # §3.2 invalid examples
    ("ftp_dpm_478_1366545717.sync.gz.pgp", "gzip and PGP combined"),
    ("ftp_dpm_478_1366545717.zip", "expected .sync or .overwrite after the timestamp, found '.zip'"),
    ("FTP_DPM_478_1366545717.sync", "unknown file name"),
    ("ftp_dpm_478_1366545717.txt", "expected .sync or .overwrite after the timestamp, found '.txt'"),
    # §2.3.1 invalid examples
    ("adobe_id_12345_1476312152.sync", "need at least two DPIDs"),
    ("adobe_id_0_12345_147631215.sync", "timestamp must be 10 digits, got 9"),
    ("adobe_id_0_12345_1476312152.overwrite", ".overwrite is not defined for ID-sync files"),
    ("adobe_id_0_12345_1476312152.zip", "expected .sync after the timestamp, found '.zip'"),
    # D-20: short documentation placeholders are invalid by default
    ("ftp_dpm_21_123456789.sync", "timestamp must be 10 digits, got 9"),
    ("ftp_dpm_21_12345678901.sync", "timestamp must be 10 digits, got 11"),
    # §3.2 more than two numeric groups before the timestamp
    ("ftp_dpm_1_2_3_1366545717.sync", "more than two numeric groups before the timestamp"),
    ("ftp_dpm_odc_1_2_3_1366545717.sync", "more than two numeric groups before the timestamp"),
    # §3.2.1: ODC names only take .gz
    ("ftp_dpm_odc_21_1366545717.sync.pgp", "ODC files cannot be PGP-encrypted"),
    ("ftp_dpm_odc_21_1366545717.sync.gz.gpg", "gzip and PGP combined"),
    # §3.3.2: never combined, in either order
    ("ftp_dpm_478_1366545717.sync.pgp.gz", "gzip and PGP combined"),
    ("ftp_dpm_478_1366545717.sync.1.gpg.gz", "gzip and PGP combined"),
    ("adobe_id_0_12345_1476312152.sync.gz.gpg", "gzip and PGP combined"),
    ("ftp_dpm_478_1366545717.sync.gz.gz", "unexpected '.gz' after '.gz'"),
    ("ftp_dpm_478_1366545717.sync.pgp.gpg", "unexpected '.gpg' after '.pgp'"),
    # §3.3.1: only gzip
    ("ftp_dpm_478_1366545717.sync.zip", "unsupported compression or format '.zip'"),
    ("ftp_dpm_478_1366545717.sync.bz2", "unsupported compression or format '.bz2'"),
    ("ftp_dpm_478_1366545717.sync.tar.gz", "unsupported compression or format '.tar'"),
    ("ftp_dpm_478_1366545717.sync.foo", "unknown suffix '.foo'"),
    # case-sensitive names, lower-case literals
    ("ftp_dpm_478_1366545717.SYNC", "mode '.SYNC' is not lower-case"),
    ("ftp_dpm_478_1366545717.sync.GZ", "suffix '.GZ' is not lower-case"),
    ("Adobe_id_0_1_1476312152.sync", "unknown file name"),
    ("FTP_DPM_ODC_1_1476312152.sync", "unknown file name"),
    # order of tail parts: mode [. split] [. suffix]
    ("ftp_dpm_478_1366545717.sync.gz.1", "split number after the suffix '.gz'"),
    ("ftp_dpm_478_1366545717.sync.1.2", "unknown suffix '.2'"),
    ("ftp_dpm_478_1366545717.1.sync", "expected .sync or .overwrite after the timestamp, found '.1'"),
    ("ftp_dpm_478_1366545717.sync.", "empty extension"),
    ("ftp_dpm_478_1366545717.sync..gz", "empty extension"),
    ("ftp_dpm_478_1366545717", "no mode after the timestamp"),
    ("ftp_dpm_478_1366545717.", "expected .sync or .overwrite after the timestamp, found '.'"),
    # numeric groups
    ("ftp_dpm_1366545717.sync", "missing DPID or timestamp"),
    ("ftp_dpm_.sync", "empty timestamp"),
    ("ftp_dpm__1366545717.sync", "empty DPID"),
    ("ftp_dpm_478__1366545717.sync", "empty target DPID"),
    ("ftp_dpm_478_1366545717_.sync", "empty timestamp"),
    ("ftp_dpm_abc_1366545717.sync", "DPID 'abc' is not a number"),
    ("ftp_dpm_478_abc_1366545717.sync", "target DPID 'abc' is not a number"),
    ("ftp_dpm_478_136654571x.sync", "timestamp '136654571x' is not a number"),
    ("ftp_dpm_\u0664\u0667\u0668_1366545717.sync", "is not a number"),  # Arabic-Indic digits
    ("ftp_dpm_+478_1366545717.sync", "is not a number"),
    ("ftp_dpm_odcx_1_1366545717.sync", "DPID 'odcx' is not a number"),
    ("ftp_dpm_0_1366545717.sync", "DPID 0 is not allowed in ftp_dpm_ names"),
    ("ftp_dpm_478_0_1366545717.sync", "target DPID 0 is not allowed"),
    ("ftp_dpm_0478_1366545717.sync", "DPID '0478' has a leading zero"),
    ("adobe_id_00_1_1366545717.sync", "master DPID '00' has a leading zero"),
    ("ftp_dpm_2147483648_1366545717.sync", "DPID '2147483648' is larger than 2147483647"),
    ("ftp_dpm_99999999999999999999_1366545717.sync", "is larger than 2147483647"),
    ("ftp_dpm_1_1366545717.sync.2147483648", "split number '2147483648' is larger than 2147483647"),
    # c2c_id_: exactly <customer DPID>_<hashed-email DPID>
    ("c2c_id_123_898_456_1454442149.sync", "c2c_id_ files link exactly two DPIDs, found 3"),
    ("c2c_id_0_898_1454442149.sync", "master DPID 0 is not allowed in c2c_id_ names"),
    ("c2c_id_123_0_1454442149.sync", "DPID #2 0 is not allowed in c2c_id_ names"),
    ("c2c_id_123_1454442149.sync", "need at least two DPIDs"),
    ("c2c_id_123_898_1454442149.overwrite", ".overwrite is not defined for ID-sync files"),
    # not a base name, or nothing at all
    ("acme/date=2016-05-09/ftp_dpm_478_1366545717.sync.1.gz", "file name contains '/'"),
    ("", "unknown file name"),
    ("ftp_dpm", "unknown file name"),
    ("ftp_12345_67890_full_1500727351632.info", "unknown file name"),
    (" ftp_dpm_478_1366545717.sync", "unknown file name"),
    ("ftp_dpm_478_1366545717.sync ", "expected .sync or .overwrite after the timestamp"),
]


@pytest.mark.parametrize(("name", "expected"), VALID, ids=[n for n, _ in VALID])
def test_valid_names(name, expected):
    parsed = parse_file_name(name)
    assert components(parsed) == expected
    assert parsed.name == name


@pytest.mark.parametrize(("name", "reason"), INVALID, ids=[n or "<empty>" for n, _ in INVALID])
def test_invalid_names(name, reason):
    with pytest.raises(InvalidFileName) as info:
        parse_file_name(name)
    assert reason in info.value.message
    assert info.value.hint, "every rejection says how to fix it"
    assert info.value.where == name


def test_s3_key_base_name_parses():
    # §3.2: full key <bucket>/acme/date=2016-05-09/ftp_dpm_478_1366545717.sync.1.gz; the caller
    # passes the base name.
    key = "bucket/acme/date=2016-05-09/ftp_dpm_478_1366545717.sync.1.gz"
    assert components(parse_file_name(key.rsplit("/", 1)[1])) == data(False, 478, None, 1366545717, "sync", 1, "gz")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ftp_dpm_21_123456789.sync", data(False, 21, None, 123456789, "sync", None, None)),
        ("ftp_dpm_21_1.sync.gz", data(False, 21, None, 1, "sync", None, "gz")),
        ("adobe_id_0_12345_147631215.sync", sync("adobe_id_", (0, 12345), 147631215, None, None)),
        ("ftp_dpm_478_1366545717.sync", data(False, 478, None, 1366545717, "sync", None, None)),
    ],
)
def test_accept_short_timestamp(name, expected):
    # D-20: the tolerance flag admits 1–9 digit timestamps.
    assert components(parse_file_name(name, accept_short_timestamp=True)) == expected


@pytest.mark.parametrize("name", ["ftp_dpm_21_12345678901.sync", "ftp_dpm_21_.sync"])
def test_accept_short_timestamp_still_rejects(name):
    with pytest.raises(InvalidFileName):
        parse_file_name(name, accept_short_timestamp=True)


@pytest.mark.parametrize(
    ("name", "base_name"),
    [
        ("ftp_dpm_478_1366545717.sync.1.gz", "ftp_dpm_478_1366545717.sync"),
        ("ftp_dpm_478_1366545717.sync.2.gz", "ftp_dpm_478_1366545717.sync"),
        ("ftp_dpm_478_567_0366545717.overwrite.12.pgp", "ftp_dpm_478_567_0366545717.overwrite"),
        ("ftp_dpm_odc_21_1366545717.overwrite", "ftp_dpm_odc_21_1366545717.overwrite"),
        ("adobe_id_123_898_456_1454442149.sync.2.gz", "adobe_id_123_898_456_1454442149.sync"),
        ("c2c_id_123_898_1454442149.sync.gpg", "c2c_id_123_898_1454442149.sync"),
    ],
)
def test_base_name_drops_split_and_suffix(name, base_name):
    assert parse_file_name(name).base_name == base_name


@pytest.mark.parametrize(
    ("name", "owner"),
    [
        ("ftp_dpm_478_567_1366545717.sync.gz", 567),
        ("ftp_dpm_478_1366545717.sync", 478),
        ("ftp_dpm_20914_21_1234567890.sync", 21),
        ("ftp_dpm_odc_21_1366545717.sync", 21),
        ("ftp_dpm_odc_21_55_1366545717.sync", 55),
    ],
)
def test_owner_dpid_is_target_or_dpid(name, owner):
    parsed = parse_file_name(name)
    assert isinstance(parsed, DataFileName)
    assert parsed.owner_dpid == owner


def test_unknown_name_hints():
    with pytest.raises(InvalidFileName) as info:
        parse_file_name("FTP_DPM_478_1366545717.sync")
    assert "case-sensitive" in info.value.hint and "'ftp_dpm_'" in info.value.hint
    with pytest.raises(InvalidFileName) as info:
        parse_file_name("report.csv")
    for prefix in ("ftp_dpm_odc_", "ftp_dpm_", "adobe_id_", "c2c_id_"):
        assert prefix in info.value.hint


def test_error_renders_what_where_how():
    with pytest.raises(InvalidFileName) as info:
        parse_file_name("ftp_dpm_478_1366545717.sync.gz.pgp")
    assert str(info.value).startswith("ftp_dpm_478_1366545717.sync.gz.pgp: gzip and PGP combined — ")


def test_long_pieces_are_shortened_in_messages():
    with pytest.raises(InvalidFileName) as info:
        parse_file_name("ftp_dpm_478_1366545717.sync." + "x" * 500)
    assert len(info.value.message) < 80
