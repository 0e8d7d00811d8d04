"""The simple-line paths of the engine against its per-item path, whole jobs compared.

Lines made only of well-formed ``d_sid``/``d_unsid`` items take a short path through
the engine (list functions per line, ``data_plan._evaluate_simple_lines``); in `.sync`
files of platform UUIDs, profiles made only of such lines are merged natively before that
(``engine/simple_profiles.py``); every other line is split into items. All must give the
same receipt counters, the same reject rows and the same profiles. Hypothesis writes a
prior file (so removals and `.overwrite` have something to act on) and a test file mixing
simple lines with lines that are not simple (spaces, upper-case keys, signals, bad IDs),
with repeated users (the 200-lines cap is 3 here, and operations on one profile spread
over several lines), valid traits, traits of another data source, rule-based traits and
unknown IDs. The job runs three times in triplet stores: as shipped, without the native
merge, and with no simple-line path at all.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onramp.engine import data_plan, simple_profiles
from onramp.service.ingest import run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

PARTNER = 7
CAP = 3
TAXONOMY = """
partners:
  - {pid: 7, name: acme}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
  - {dpid: 23, owner: 7, name: uuids, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 55, owner: 9, name: other, id_type: cross_device, inbound_id_type: customer_id}
traits:
  - {sid: 2201, name: a, data_source: 22, type: onboarded}
  - {sid: 2202, name: b, data_source: 22, type: onboarded, ttl_days: 0}
  - {sid: 2203, name: c, data_source: 22, type: onboarded, rule: 'color == "red"'}
  - {sid: 2301, name: d, data_source: 23, type: onboarded}
  - {sid: 2302, name: e, data_source: 23, type: onboarded}
  - {sid: 2209, name: rb, data_source: 22, type: rule_based, rule: 'x == "1"'}
  - {sid: 5501, name: o, data_source: 55, type: onboarded}
"""
VALID = ["2201", "2202", "2203", "2301", "2302"]
TRAITS = VALID * 3 + ["2209", "5501", "424242", "0", "007"]  # mostly traits that change profiles


MODES = ("fast", "sql", "items")  # as shipped; without the native merge; per item only


def _twin_stores(root: Path, modes: tuple[str, ...] = MODES) -> dict[str, Path]:
    out = {}
    for mode in modes:
        data_dir = root / mode / "data"
        con = connect(load_settings(data_dir=data_dir))
        try:
            apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
        finally:
            con.close()
        out[mode] = data_dir
    return out


def _directive(add: bool, sid: str) -> str:
    return f"d_sid={sid}" if add else f"d_unsid={sid}"


simple_items = st.lists(st.tuples(st.booleans(), st.sampled_from(TRAITS), st.sampled_from([",", ",", ", "])),
                        min_size=1, max_size=6).map(
    lambda ds: "".join(sep + _directive(a, s) for a, s, sep in ds)[len(ds[0][2]):]
)
other_items = st.sampled_from(["D_SID=2201", " d_sid=2201", "d_sid=2201 ,d_sid=2202", "d_sid = 2301", "color=red", "d_sid=2201,color=red", "d_sid=2202,,d_sid=2201",
                               '"d_sid"=2302', "d_sid=2201:0", "2201:0", "d_sid=x", "d_sid=99999999999"])


@st.composite
def job_files(draw, native: bool = False):
    n = 0  # each example runs in fresh stores
    platform = native or draw(st.booleans())
    n_users = draw(st.integers(1, 4 if native else 10))  # many users: most have one line; few: several lines each
    if platform:
        users = [f"{n:06d}{i:032d}" for i in range(n_users)] + ["123"]  # the last one is not a platform UUID
    else:
        users = [f"u{n}-{i}" for i in range(n_users)] + ["bad:id"]
    user = st.sampled_from(users)
    line = st.tuples(user, st.one_of(simple_items, simple_items, other_items)).map(lambda t: f"{t[0]}\t{t[1]}")
    # Before the test file, some users hold every trait of the data source (removals and
    # .overwrite then have something to remove).
    own = [t for t in VALID if t.startswith("23" if platform else "22")]
    holders = draw(st.lists(st.sampled_from(users[:-1]), max_size=n_users, unique=True))
    prior = [f"{u}\t" + ",".join(f"d_sid={t}" for t in own) for u in holders]
    lines = draw(st.lists(line, min_size=1, max_size=14))
    overwrite = not native and draw(st.booleans())
    return n, ("23" if platform else "22"), prior, lines, overwrite


def _run(data_dir: Path, path: Path, *, mode: str, dry_run: bool):
    s = load_settings(data_dir=data_dir, inbound={"max_lines_per_user": CAP}, engine={"native_merge": mode == "fast"})
    if mode != "items":
        return run_job(s, [path], partner=PARTNER, dry_run=dry_run)
    with mock.patch.object(data_plan, "_fast_path_applies", return_value=False):
        return run_job(s, [path], partner=PARTNER, dry_run=dry_run)


def _profiles(data_dir: Path, users_like: str) -> list[tuple]:
    con = connect(load_settings(data_dir=data_dir))
    try:
        return con.execute(
            "SELECT ns, id, sid FROM realizations WHERE id LIKE ? ORDER BY ALL", [users_like]
        ).fetchall()
    finally:
        con.close()


@settings(max_examples=40, deadline=None)
@given(case=job_files())
def test_simple_lines_match_per_item_path(case):
    with tempfile.TemporaryDirectory() as root:
        _compare(_twin_stores(Path(root)), *case)


@settings(max_examples=40, deadline=None)
@given(case=job_files(native=True))
def test_native_merge_matches_sql(case):
    """`.sync` files of platform UUIDs with few users, so that simple profiles and profiles
    with other lines (removals, errors, over the cap) share the files."""
    with tempfile.TemporaryDirectory() as root:
        _compare(_twin_stores(Path(root), ("fast", "sql")), *case)


def _compare(stores: dict[str, Path], n: int, dpids: str, prior: list[str], lines: list[str], overwrite: bool) -> None:
    results = {}
    for mode, data_dir in stores.items():
        if prior:
            first = data_dir.parent / f"ftp_dpm_{dpids}_{1700000000 + 2 * n}.sync"
            first.write_text("\n".join(prior) + "\n")
            _run(data_dir, first, mode=mode, dry_run=False)
        test = data_dir.parent / f"ftp_dpm_{dpids}_{1700000001 + 2 * n}.{'overwrite' if overwrite else 'sync'}"
        test.write_text("\n".join(lines) + "\n")
        dry = _run(data_dir, test, mode=mode, dry_run=True)
        wet = _run(data_dir, test, mode=mode, dry_run=False)
        like = f"{n:06d}%" if dpids == "23" else f"u{n}-%"
        results[mode] = (dry.receipts[0].counters, sorted(map(sorted, (p.items() for p in dry.problems))),
                         wet.receipts[0].counters, _profiles(data_dir, like))
    *others, reference = results  # the last mode is the reference
    items = results[reference]
    for mode in others:
        fast = results[mode]
        assert fast[0] == items[0], f"{mode}: dry-run receipt counters differ"
        assert fast[1] == items[1], f"{mode}: reject rows differ"
        assert fast[2] == items[2], f"{mode}: receipt counters differ"
        assert fast[3] == items[3], f"{mode}: profiles differ"


def test_simple_path_is_taken(tmp_path):
    """Guards the comparison above: simple lines really take the short path (of the SQL
    plan: without the native merge, which takes data source 22 for its rule)."""
    stores = _twin_stores(tmp_path)
    path = stores["fast"].parent / "ftp_dpm_22_1600000000.sync"
    path.write_text("s1\td_sid=2201,d_unsid=2202\ns2\td_sid=5501\n")
    seen = []
    real = data_plan._evaluate_simple_lines

    def spy(con, plan):
        real(con, plan)
        seen.append(con.execute("SELECT count(*) FROM simple_result").fetchone()[0])

    with mock.patch.object(data_plan, "_evaluate_simple_lines", spy):
        result = run_job(load_settings(data_dir=stores["fast"], engine={"native_merge": False}), [path], partner=PARTNER,
                         dry_run=True)
    assert seen == [2]
    c = result.receipts[0].counters
    assert (c["stored_records"], c["total_traits_failed_validation"], c["no_trait_realized"]) == (1, 1, 1)


def test_native_merge_is_taken(tmp_path):
    """Guards the comparisons above: simple profiles of platform UUIDs really are merged
    natively."""
    assert simple_profiles.available(), "the native extension is not built: reinstall with `pip install -e .`"
    stores = _twin_stores(tmp_path)
    path = stores["fast"].parent / "ftp_dpm_23_1600000000.sync"
    uuid_a, uuid_b, uuid_c = (f"{i:038d}" for i in (1, 2, 3))
    path.write_text(f"{uuid_a}\td_sid=2301,d_sid=2301, d_sid=424242\n{uuid_b}\td_sid=2302\n{uuid_b}\td_unsid=2302\n{uuid_c}\td_sid=5501\n")
    seen = []
    real = simple_profiles.merge_chunk

    def spy(lines, **kwargs):
        merged = real(lines, **kwargs)
        seen.append((int(merged.simple.sum()), merged.add_lists.to_pylist(), merged.no_trait.column("line_no").to_pylist()))
        return merged

    with mock.patch.object(simple_profiles, "merge_chunk", spy):
        result = run_job(load_settings(data_dir=stores["fast"]), [path], partner=PARTNER, dry_run=True)
    # every line is simple; uuid_b's removal is replayed natively (its add, then its removal)
    assert seen == [(4, [{"ns": 0, "pid": uuid_a, "sids": [2301]}], [4])]
    c = result.receipts[0].counters
    assert (c["stored_records"], c["no_trait_realized"], c["total_realized_traits"], c["total_unused_signals"]) == (3, 1, 2, 2)
