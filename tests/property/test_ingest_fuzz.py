"""Fuzzing ``run_job`` end to end: junk content, mutated files and junk names never crash a job,
and every receipt keeps the §6.2 identities.

(a) random bytes as the content of validly named files — plain, gzip-wrapped, truncated or
    damaged gzip, PGP-named — through a dry run;
(b) random mutations of a valid file (byte flips, inserted TAB / quote / comma / CR / LF /
    '=' / space, deleted bytes, duplicated lines) through a dry run and then a real job;
    the real job must never touch realizations of traits owned by data sources other than
    the file's target (§3.8.2, §3.9, §4.5);
(c) random file names for an existing file: never raises, and a name that does not parse
    (§2.3.1, §3.2, §3.2.1) is listed, rejected, in a ``rejected_files`` receipt (§6.1).

Identities checked on every data receipt (§6.2, D-52, §3.6):
    stored = processed − (format + invalid AAM + invalid device + no matching + no trait)
    received = processed + discarded-by-cap
    non-stored lines (dry-run problems) + stored = received
"""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from onramp.errors import InvalidFileName
from onramp.formats.names import parse_file_name
from onramp.intake.keys import PlatformKeyring
from onramp.service.ingest import JobResult, run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

PARTNER = 7
CAP = 3  # lines per user per logical file: small, so mutated files hit the cap

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
  - {dpid: 23, owner: 7, name: uuids, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 55, owner: 9, name: other, id_type: cross_device, inbound_id_type: customer_id}
traits:
  - {sid: 211, name: t211, data_source: 21, type: onboarded}
  - {sid: 212, name: t212, data_source: 21, type: onboarded, rule: 'ic == "1"'}
  - {sid: 221, name: t221, data_source: 22, type: onboarded}
  - {sid: 222, name: t222, data_source: 22, type: onboarded, rule: 'ic == "1"'}
  - {sid: 223, name: t223, data_source: 22, type: onboarded, rule: 'product contains "tab"'}
  - {sid: 229, name: rb229, data_source: 22, type: rule_based, rule: 'x == "1"'}
  - {sid: 231, name: t231, data_source: 23, type: onboarded}
  - {sid: 9, name: t9, data_source: 55, type: onboarded, rule: 'ic == "1"'}
access_mappings:
  - {pid: 7, dpid: 55}
"""

USERS = [f"u{i}" for i in range(6)]
UUID = "07955261652886032950143702505894272138"
GAID = "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"

_stamps = itertools.count(1_700_000_000)


def _settings(data_dir: Path):
    return load_settings(data_dir=data_dir, inbound={"max_lines_per_user": CAP})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store with the taxonomy, a platform PGP key, and realizations of traits of 21, 22
    and 55 on the cross-device profiles (22, u0..u5)."""
    root = tmp_path_factory.mktemp("ingest_fuzz")
    data_dir = root / "data"
    con = connect(_settings(data_dir))
    try:
        taxonomy, _ = load_taxonomy(TAXONOMY)
        apply_taxonomy(con, taxonomy)
    finally:
        con.close()
    PlatformKeyring(data_dir / "gnupg", key_length=1024).ensure_key()  # small key: fast; any key works
    seed = root / "seed"
    seed.mkdir()
    files = []
    for dpids, item in (("22_21", "d_sid=211"), ("22_55", "d_sid=9"), ("22", "d_sid=221,d_sid=223")):
        path = seed / f"ftp_dpm_{dpids}_{next(_stamps)}.sync"
        path.write_bytes("".join(f"{u}\t{item}\n" for u in USERS).encode())
        files.append(path)
    result = run_job(_settings(data_dir), files, partner=PARTNER)
    assert [r.counters["stored_records"] for r in result.receipts] == [len(USERS)] * 3, result.receipts
    return data_dir


def job(data_dir: Path, paths: list[Path], *, dry_run: bool) -> JobResult:
    try:
        return run_job(_settings(data_dir), paths, partner=PARTNER, dry_run=dry_run)
    except Exception as exc:
        shown = {p.name: p.read_bytes()[:300] for p in paths}
        raise AssertionError(f"run_job raised {type(exc).__name__}: {str(exc)[:300]} on {shown!r}") from exc


FAILURES = ("format_errors", "invalid_aam_id", "invalid_device_id", "no_matching_aam_id", "no_trait_realized")


def check_receipts(result: JobResult, paths: list[Path], *, dry_run: bool) -> None:
    listed = [f.name for r in result.receipts for f in r.files]
    assert sorted(listed) == sorted(p.name for p in paths), "every file is listed in exactly one receipt"
    problems_by_file: dict[str, list[dict]] = {}
    for p in result.problems:
        problems_by_file.setdefault(p["file"], []).append(p)
    for r in result.receipts:
        c = r.counters
        assert all(v >= 0 for v in c.values()), c
        names = [f.name for f in r.files if f.status != "rejected"]
        if not names:
            assert all(v == 0 for v in c.values()), (r.kind, c)
        for f in r.files:
            if f.status == "rejected":
                assert f.reason, f
                assert f.name not in problems_by_file, "no line of a rejected file is reported"
        if r.kind != "data":
            continue
        assert c["stored_records"] == c["records_processed"] - sum(c[k] for k in FAILURES), c
        assert c["records_received"] >= c["records_processed"], c
        if dry_run:
            mine = [p for n in names for p in problems_by_file.get(n, [])]
            discarded = sum(1 for p in mine if p["bucket"] == "discarded")
            assert c["records_received"] == c["records_processed"] + discarded, c
            assert len(mine) + c["stored_records"] == c["records_received"], (c, len(mine))
            assert len({(p["file"], p["line_number"]) for p in mine}) == len(mine), "one problem per line"
            by_bucket = {b: sum(1 for p in mine if p["bucket"] == b) for b in {p["bucket"] for p in mine}}
            assert by_bucket.get("format_error", 0) == c["format_errors"], (by_bucket, c)
            assert by_bucket.get("no_trait_realized", 0) == c["no_trait_realized"], (by_bucket, c)


# --- (a) random bytes under valid names ---------------------------------------------------------

NAMES = [
    "ftp_dpm_22_{ts}.sync", "ftp_dpm_22_{ts}.overwrite", "ftp_dpm_22_21_{ts}.sync", "ftp_dpm_23_{ts}.sync",
    "ftp_dpm_20914_21_{ts}.sync", "ftp_dpm_odc_21_{ts}.sync", "ftp_dpm_22_{ts}.sync.2", "adobe_id_0_22_{ts}.sync",
    "adobe_id_20914_22_{ts}.sync", "c2c_id_22_21_{ts}.sync",
]
PIECES = [b"\n", b"\r", b"\r\n", b"\t", b" ", b",", b"=", b'"', b":", b"\x00", b"\xff", b"\xef\xbb\xbf", b"\x1f\x8b",
          b"u1", b"d_sid=221", b"d_unsid=9", b"28:0", b"1", b"product=tablet", b"idfa", b"gaid", UUID.encode(), GAID.encode()]
contents = st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join),
)


@st.composite
def containers(draw, data: bytes) -> tuple[str, bytes, str]:
    """(name suffix, stored bytes, what the container is) for ``data``."""
    how = draw(st.sampled_from(["plain", "plain", "gz", "gz-multi", "gz-truncated", "gz-damaged", "gz-not-gzip", "pgp"]))
    if how == "plain":
        return "", data, how
    if how == "pgp":
        return draw(st.sampled_from([".pgp", ".gpg"])), data, how
    if how == "gz-not-gzip":
        return ".gz", data, how
    packed = gzip.compress(data, mtime=0)
    if how == "gz-multi":
        cut = draw(st.integers(0, len(data)))
        packed = gzip.compress(data[:cut], mtime=0) + gzip.compress(data[cut:], mtime=0)
    elif how == "gz-truncated":
        packed = packed[: draw(st.integers(1, len(packed) - 1))]
    elif how == "gz-damaged":
        at = draw(st.integers(10, len(packed) - 1))  # past the header's magic
        packed = packed[:at] + bytes([packed[at] ^ draw(st.integers(1, 255))]) + packed[at + 1 :]
    return ".gz", packed, how


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(NAMES), contents.flatmap(containers))
@example("ftp_dpm_22_{ts}.sync", ("", b"\n", "plain"))  # only a blank line: an "empty file" (§3.3 check 6)
@example("ftp_dpm_22_{ts}.sync", ("", b"u1\td_sid=221\r\r\n", "plain"))
def test_random_content_never_crashes(store, name, packed):
    suffix, stored, how = packed
    path = store.parent / (name.format(ts=next(_stamps)) + suffix)
    path.write_bytes(stored)
    result = job(store, [path], dry_run=True)
    check_receipts(result, [path], dry_run=True)
    (entry,) = [f for r in result.receipts for f in r.files]
    if how in ("gz-truncated", "gz-not-gzip", "pgp") or not stored:
        assert entry.status == "rejected", (how, entry)  # §3.3.1, §3.3.2: a key that is not ours
    if how == "plain" and stored.startswith(b"\x1f\x8b"):
        assert entry.status == "rejected", entry  # D-23


# --- (b) mutations of a valid file ------------------------------------------------------------------

BASE_LINES = [
    "u0\td_sid=221,d_sid=9, product = tablet",
    'u1\t"d_sid"="222",d_unsid=211,9:0, 212:-1',
    "u2\t1,ic=1, c_color = red,,",
    "u3\td_unsid=221, d_sid=229",
    'u4\t"product"="my tablet",-x=1',
    "u5\td_sid=211,d_sid=9,d_unsid=9",
    "u0\t223:0,d_sid=424242",
    "u1\tcolor=blue",
]
INSERTS = [b"\t", b'"', b",", b"\r", b"\n", b"=", b" ", b":", b"\xff", b"-", b"0"]


@st.composite
def mutated(draw) -> bytes:
    lines = draw(st.permutations(BASE_LINES))
    body = bytearray(("\n".join(lines[: draw(st.integers(1, len(lines)))]) + "\n").encode())
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "insert", "delete", "duplicate"]))
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            body[at:at] = draw(st.sampled_from(INSERTS))
        elif op == "delete" and body:
            body[at : at + draw(st.integers(1, 4))] = b""
        elif op == "duplicate":
            text = bytes(body).split(b"\n")
            i = draw(st.integers(0, len(text) - 1))
            text[i:i] = [text[i]] * draw(st.integers(1, 4))
            body = bytearray(b"\n".join(text))
    return bytes(body)


def other_owners_rows(data_dir: Path, target: int) -> list[tuple]:
    """Every realization of a trait not owned by ``target`` (or of no known trait)."""
    con = connect(_settings(data_dir), read_only=True)
    try:
        return con.execute(
            """SELECT r.env, r.ns, r.id, r.sid, r.realized_at FROM realizations r
                 LEFT JOIN traits t ON t.sid = r.sid
                WHERE t.data_source IS DISTINCT FROM ? ORDER BY ALL""",
            [target],
        ).fetchall()
    finally:
        con.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated(), st.sampled_from([("22", 22), ("22_21", 21)]), st.sampled_from(["sync", "overwrite"]), st.booleans())
def test_mutated_files_keep_identities_and_other_sources(store, content, names, mode, gz):
    dpids, target = names
    path = store.parent / f"ftp_dpm_{dpids}_{next(_stamps)}.{mode}{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    dry = job(store, [path], dry_run=True)
    check_receipts(dry, [path], dry_run=True)
    before = other_owners_rows(store, target)
    real = job(store, [path], dry_run=False)
    check_receipts(real, [path], dry_run=False)
    assert [r.counters for r in real.receipts] == [r.counters for r in dry.receipts], "a dry run predicts the job"
    after = other_owners_rows(store, target)
    assert after == before, f"realizations of traits not owned by {target} changed: {set(before) ^ set(after)}"


# --- (c) random file names -------------------------------------------------------------------------

NAME_PARTS = ["ftp_dpm_", "ftp_dpm_odc_", "adobe_id_", "c2c_id_", "FTP_DPM_", "22", "21", "0", "20914", "_", ".",
              "1700000000", "170000000", "17000000000", ".sync", ".overwrite", ".SYNC", ".1", ".01", ".gz", ".pgp",
              ".gpg", ".zip", ".txt", "٢", "²", " ", "\t", "\n", "-", "..", "99999999999"]


def _usable(name: str) -> bool:
    try:
        encoded = os.fsencode(name)
    except UnicodeError:
        return False
    return bool(name) and "/" not in name and "\x00" not in name and name not in (".", "..") and len(encoded) <= 255


@st.composite
def near_valid_names(draw) -> str:
    """Names built from the grammar's pieces (valid about half the time), maybe with one edit."""
    prefix = draw(st.sampled_from(["ftp_dpm_", "ftp_dpm_", "ftp_dpm_odc_", "adobe_id_", "c2c_id_"]))
    dpid = st.sampled_from(["22", "22", "22", "21", "23", "55", "0", "0", "20914", "99", "021", "2147483648"])
    dpids = [draw(dpid) for _ in range(draw(st.sampled_from([1, 1, 2, 2, 2, 3, 0])))]
    stamp = draw(st.sampled_from(["1700000000"] * 4 + ["170000000", "17000000000", "0000000000"]))
    mode = draw(st.sampled_from([".sync", ".sync", ".overwrite", ".SYNC", ""]))
    split = draw(st.sampled_from(["", "", ".1", ".2", ".0", ".01"]))
    suffix = draw(st.sampled_from(["", "", ".gz", ".pgp", ".gpg", ".gz.pgp", ".zip", ".GZ", "."]))
    name = prefix + "_".join([*dpids, stamp]) + mode + split + suffix
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(name)))
        if draw(st.booleans()):
            name = name[:at] + draw(st.sampled_from(list("_.0a \t\u0662\u00b2-"))) + name[at:]
        else:
            name = name[:at] + name[at + 1 :]
    return name


file_names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=10).map("".join),
    near_valid_names(),
    near_valid_names(),
    near_valid_names(),
).filter(_usable)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_names)
@example("ftp_dpm_22_1700000000.sync")
@example("ftp_dpm_22_1700000000.sync.gz")
@example("ftp_dpm_22_1700000000.SYNC")
@example("..sync")
def test_random_file_names(store, tmp_path_factory, name):
    folder = tmp_path_factory.mktemp("names")
    path = folder / name
    path.write_bytes(b"u1\td_sid=221\n")
    result = job(store, [path], dry_run=True)
    check_receipts(result, [path], dry_run=True)
    try:
        parse_file_name(name)
    except InvalidFileName:
        (receipt,) = result.receipts
        assert receipt.kind == "rejected_files", receipt
        (entry,) = receipt.files
        assert entry.status == "rejected" and entry.reason, entry
        return
    (receipt,) = result.receipts
    assert receipt.kind in ("data", "id_sync"), receipt
