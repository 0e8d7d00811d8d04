"""The native key-value profile merge against the SQL plan, whole jobs compared.

In `.sync` files of customer IDs (cross-device) and of platform UUIDs, profiles whose lines
hold only key=value signals (any quoting, §3.4), bare integration codes, empty items and
``d_sid=N`` adds are merged natively (``engine/kv_profiles.py``), evaluated against the
data source's trait rules; every other line, and all lines of its profile, takes the SQL
plan. The switch is ``engine.native_merge``: results must be the same either way.

Hypothesis writes a prior `.sync` file (so profiles have state: refreshes, expired traits,
removals) and a test job of one or two files mixing such lines with lines that are not
(removals, malformed items, bad IDs, non-ASCII, extra TABs, `.overwrite` files), with
repeated users (the 200-lines cap is 3 here). Each job runs in twin stores, with and
without the native merge, on a pinned clock, and the receipts (everything but times and
ids), the reject rows (dry run and the published reject files) and the profiles, with
their realization times, must be identical; small chunks (``engine.chunk_lines``) spread
some files over several chunks. A second, smaller test adds rules the native pass cannot
evaluate (``matchesregex``, ``matcheswords``, a ``NOT`` that an empty line satisfies): it
must then step aside, with the same results. Deterministic tests check, with a spy on
``kv_profiles.merge_chunk``, that the native pass really runs, and really steps aside.
"""

from __future__ import annotations

import gzip
import tempfile
from datetime import datetime
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onramp.engine import kv_profiles
from onramp.service.ingest import JobResult, run_job
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy

PARTNER = 7
CAP = 3
PRIOR_AT = datetime(2024, 1, 1, 12, 0, 0)
TEST_AT = datetime(2024, 1, 3, 12, 0, 0)  # two days later: traits with ttl_days 1 have expired

# (sid suffix, rule, extra fields); each data source (22, 23) gets the same traits, sid = dpid * 100 + suffix.
RULES: list[tuple[int, str | None, str]] = [
    (1, None, ""),
    (2, None, ", ttl_days: 0"),
    (3, 'color == "red"', ""),
    (4, 'ic == "123"', ""),
    (5, 'ic == 123', ""),
    (6, 'size == 10', ""),
    (7, 'Brand == "acme"', ""),
    (8, 'color == "blue" OR shade == "NAVY"', ""),
    (10, 'make == "vw" AND model == "golf"', ""),
    (11, 'price >= 10 AND price <= 50.5', ""),
    (12, 'price > 100', ""),
    (13, 'url contains "sport"', ""),
    (14, 'url startswith "www"', ""),
    (15, 'page endswith ".html"', ""),
    (16, 'tier != "gold"', ""),
    (17, 'color == "green" OR url contains "news"', ""),
    (18, 'make == "bmw" AND NOT tier == "gold"', ""),  # a NOT that no empty line satisfies
    (19, 'temp < 0 OR size => 12 AND size < 13', ""),
    (20, 'd_city == "New York" OR c-k_9 == v1', ""),
    (21, 'ic == "0123" OR -x == "1"', ""),
    (24, None, ", ttl_days: 1"),  # expired at TEST_AT
    (25, 'color == "red"', ", ttl_days: 1"),
    (26, 'city == "zürich"', ""),
    (27, 'price != 20 AND price < 30', ""),  # numeric `!=`: 20.0 and 020 equal 20
]
# Rules the native pass cannot evaluate (a separate test): it must fall back.
VARIANTS: dict[str, list[tuple[int, str | None, str]]] = {
    "regex": [(30, 'url matchesregex ".*sport.*"', ""), (31, 'title matcheswords "slr camera"', "")],
    "not": [(32, 'NOT tier == "gold"', "")],  # true on every line without tier=gold, even d_sid-only lines
}


def taxonomy(variant: str | None = None) -> str:
    rules = RULES + (VARIANTS[variant] if variant else [])
    traits = []
    for dpid in (22, 23):
        for suffix, rule, extra in rules:
            sid = dpid * 100 + suffix
            rule_field = f", rule: '{rule}'" if rule else ""
            traits.append(f"  - {{sid: {sid}, name: t{sid}, data_source: {dpid}, type: onboarded{rule_field}{extra}}}")
        traits.append(f"  - {{sid: {dpid * 100 + 9}, name: rb{dpid}, data_source: {dpid}, type: rule_based, rule: 'x == \"1\"'}}")
    traits.append("  - {sid: 5501, name: o, data_source: 55, type: onboarded, rule: 'color == \"red\"'}")
    return "\n".join([
        "partners:",
        "  - {pid: 7, name: acme}",
        "  - {pid: 9, name: other}",
        "data_sources:",
        "  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}",
        "  - {dpid: 23, owner: 7, name: uuids, id_type: cookie, inbound_id_type: platform_uuid}",
        "  - {dpid: 55, owner: 9, name: other, id_type: cross_device, inbound_id_type: customer_id}",
        "traits:",
        *traits,
        "",
    ])


MODES = ("native", "sql")  # engine.native_merge on (the reference is the last: off)


def _twin_stores(root: Path, variant: str | None = None) -> dict[str, Path]:
    parsed = load_taxonomy(taxonomy(variant))[0]
    out = {}
    for mode in MODES:
        data_dir = root / mode / "data"
        con = connect(load_settings(data_dir=data_dir))
        try:
            apply_taxonomy(con, parsed)
        finally:
            con.close()
        out[mode] = data_dir
    return out


# -- lines -------------------------------------------------------------------------------------

USERS = {
    "22": (["Ab3-x_9Q", "zz.9", "U-1", "crm_42", "A" * 1024], ["bad:id", "a%3Ab", "jo@x.com", "", "B" * 1025]),
    "23": (["59767559181262060060278870901087098252", "00000000000000000000000000000000000001",
            "12345678901234567890123456789012345678", "99999999999999999999999999999999999999"],
           ["5976755918126206006027887090108709825", "5976755918126206006027887090108709825a", "1" * 39]),
}

VALUES = {
    "color": ["red", "RED", "Red", "blue", "green", "purple"],
    "ic": ["123", "0123", "123.0", "abc", "5"],
    "size": ["10", "10.0", "010", "-0", "1e5", "10.5", "12", "12.999", "13"],
    "brand": ["acme", "ACME", "acme "],
    "shade": ["navy", "Navy"],
    "make": ["vw", "VW", "bmw"],
    "model": ["golf", "Golf", "polo"],
    "price": ["10", "9.99", "50.50", "50.5", "50.51", "100", "100.001", "1e5", "-0", "abc", "+5", "10."],
    "url": ["www.sport.com", "www.x.com/a,b=c", "NEWS.example", "http://Sports.example/x", "w w w", "a=b"],
    "page": ["index.html", "INDEX.HTML", "a.htm", ".html"],
    "tier": ["gold", "GOLD", "silver"],
    "temp": ["-1", "-0", "0", "-0.5", "0.0"],
    "x": ["1"],
    "title": ["digital SLR camera", "slr"],
    "d_city": ["New York", "new york"],
    "c-k_9": ["v1", "V1"],
    "city": ["zurich", "ZURICH"],
    "p_secret": ["42"],
    "other": ["v", "123"],
}
KEYS = sorted(VALUES)


def _quoted(text: str, quote: bool) -> str:
    return f'"{text}"' if quote else text


@st.composite
def kv_item(draw) -> str:
    key = draw(st.sampled_from(KEYS))
    value = draw(st.sampled_from(VALUES[key]))
    key = draw(st.sampled_from([str.lower, str.lower, str.upper, str.title]))(key)
    key = draw(st.sampled_from(["", "", "", "-", "--"])) + key  # dropped after unquoting
    quote_key, quote_value = draw(st.booleans()), draw(st.booleans())
    if any(c in value for c in ",= ") and value.strip() == value:
        quote_value = quote_value or draw(st.sampled_from([True, True, True, False]))
    before, after = draw(st.sampled_from(["", "", " ", "  "])), draw(st.sampled_from(["", "", " ", "  "]))
    return f"{_quoted(key, quote_key)}{before}={after}{_quoted(value, quote_value)}"


def trait_ids(dpid: str) -> list[str]:
    own = [str(int(dpid) * 100 + s) for s in (1, 2, 3, 16, 24)]
    other = "23" if dpid == "22" else "22"
    return own * 3 + [f"{other}01", f"{dpid}09", "5501", "424242", "0", "007"]


@st.composite
def d_sid_item(draw, dpid: str) -> str:
    key = draw(st.sampled_from(["d_sid", "d_sid", "d_sid", "D_SID", '"d_sid"', "-d_sid", "D_Sid"]))
    eq = draw(st.sampled_from(["=", "=", " = ", "= "]))
    return f"{key}{eq}{draw(st.sampled_from(trait_ids(dpid)))}"


bare_code = st.sampled_from(["123", "123", "0123", "5", "00", "99999999999999999999"])
RARE = ["d_unsid={dpid}01", "d_unsid={dpid}24", "{dpid}01:0", "{dpid}03:-1", "123:0", "5:1", "color=", "=red", '""=x', "bare",
        '"unbalanced=1', "a=b=c", "d_sid=x", 'color=""', '"123"', "city=Zürich", "color=r\u00e9d", 'd_sid="{dpid}01"',
        "\u201ccolor\u201d=red", "d_unsid=5501"]


def item(dpid: str, rare: bool) -> st.SearchStrategy[str]:
    clean = [kv_item(), kv_item(), kv_item(), kv_item(), kv_item(), d_sid_item(dpid), d_sid_item(dpid), bare_code]
    if not rare:
        return st.one_of(*clean)
    return st.one_of(*clean, *[st.sampled_from(RARE).map(lambda s: s.format(dpid=dpid))] * 4)


@st.composite
def line(draw, dpid: str, users: list[str]) -> str:
    """Mostly lines the native pass may merge; else a line with removals, malformed items,
    another TAB, no TAB, or a blank line (each also makes its profile take the SQL plan)."""
    user = draw(st.sampled_from(users))
    clean = draw(st.sampled_from([True, True, True, False]))
    items = draw(st.lists(item(dpid, rare=not clean), min_size=1 if clean else 0, max_size=5))
    text = ""
    for i, it in enumerate(items):
        text += (draw(st.sampled_from([",", ",", ", ", " , ", ",,"])) if i else "") + it
    if draw(st.integers(0, 9)) == 0:
        text = "," + text  # leading empty item
    if draw(st.integers(0, 9)) == 0:
        text += ","  # trailing empty item
    if draw(st.integers(0, 7)) == 0:
        text += "   "  # trailing spaces are trimmed
    kind = "line" if clean else draw(st.sampled_from(["line", "line", "tab", "blank", "space"]))
    if kind == "blank":
        out = draw(st.sampled_from(["", "   "]))
    elif kind == "space":  # no TAB between the user ID and the items
        out = f"{user} {text}"
    elif kind == "tab":  # a second TAB: a Format Error
        at = draw(st.integers(0, len(text)))
        out = f"{user}\t{text[:at]}\t{text[at:]}"
    else:
        out = f"{user}\t{text}"
    return out + ("\r" if draw(st.integers(0, 11)) == 0 else "")  # CR LF: the CR is stripped


@st.composite
def users_of(draw, dpid: str) -> list[str]:
    good, bad = USERS[dpid]
    n_good = draw(st.integers(1, len(good)))  # few users: most profiles have several lines
    pool = draw(st.permutations(good))[:n_good]
    return pool * 4 + draw(st.lists(st.sampled_from(bad), max_size=1))


@st.composite
def job_files(draw):
    """(prior, test files, chunk_lines): each file (dpid, suffix, lines, EOL after the last
    line). The prior job is a `.sync` file; the test job one file, or two (the same data
    source or both). Small chunks spread a file's profiles over several chunks."""
    dpid = draw(st.sampled_from(["22", "23"]))
    users = {d: draw(users_of(d)) for d in ("22", "23")}
    own_plain = [str(int(dpid) * 100 + s) for s in (1, 2, 24, 25)]
    holders = draw(st.lists(st.sampled_from(sorted(set(users[dpid]))), min_size=1, max_size=2, unique=True))
    prior = [f"{u}\t" + ",".join(f"d_sid={t}" for t in own_plain) + ",color=red,tier=silver" for u in holders]
    prior += draw(st.lists(line(dpid, users[dpid]), max_size=6))
    files = [(dpid, draw(st.sampled_from(["sync"] * 5 + ["overwrite"])), draw(st.lists(line(dpid, users[dpid]), min_size=1, max_size=14)),
              draw(st.sampled_from([True, True, True, False])))]  # False: the last line ends the file
    if draw(st.integers(0, 3)) == 0:
        second = draw(st.sampled_from(["22", "23"]))
        files.append((second, "sync", draw(st.lists(line(second, users[second]), min_size=1, max_size=8)), True))
    chunk_lines = draw(st.sampled_from([1_000_000, 1_000_000, 1_000_000, 4]))
    return (dpid, prior), files, chunk_lines


# -- runs --------------------------------------------------------------------------------------

def _run(data_dir: Path, paths: list[Path], *, mode: str, dry_run: bool, at: datetime, chunk_lines: int = 1_000_000) -> JobResult:
    s = load_settings(data_dir=data_dir, inbound={"max_lines_per_user": CAP},
                      engine={"native_merge": mode == "native", "chunk_lines": chunk_lines})
    return run_job(s, paths, partner=PARTNER, dry_run=dry_run, clock=lambda: at)


def _receipts(data_dir: Path, result: JobResult) -> list[tuple]:
    """Everything a receipt says but its id, times and URIs; with its published reject rows."""
    out = []
    for r in result.receipts:
        rejects = gzip.decompress((data_dir / r.rejects).read_bytes()).decode() if r.rejects else None
        files = [(f.name, f.status, f.reason, f.duplicate) for f in r.files]
        out.append((r.kind, r.partner, r.dpid, r.target_dpid, r.environment, files, dict(sorted(r.counters.items())),
                    r.warnings, rejects))
    return sorted(out, key=repr)


def _problems(result: JobResult) -> list:
    return sorted(sorted(p.items()) for p in result.problems)


def _profiles(data_dir: Path) -> list[tuple]:
    con = connect(load_settings(data_dir=data_dir))
    try:
        return con.execute("SELECT env, ns, id, sid, realized_at FROM realizations ORDER BY ALL").fetchall()
    finally:
        con.close()


def _write(where: Path, dpid: str, ts: int, suffix: str, lines: list[str], last_eol: bool = True) -> Path:
    path = where / f"ftp_dpm_{dpid}_{ts}.{suffix}"
    path.write_bytes(("\n".join(lines) + ("\n" if last_eol else "")).encode())
    return path


def _outcomes(data_dir: Path, mode: str, prior: tuple[str, list[str]], files: list[tuple[str, str, list[str], bool]],
              chunk_lines: int = 1_000_000) -> dict[str, object]:
    where = data_dir.parent
    run = partial(_run, data_dir, mode=mode, chunk_lines=chunk_lines)
    out: dict[str, object] = {}
    dpid, prior_lines = prior
    if prior_lines:
        first = _write(where, dpid, 1700000000, "sync", prior_lines)
        out["prior receipts"] = _receipts(data_dir, run([first], dry_run=False, at=PRIOR_AT))
        out["profiles after the prior job"] = _profiles(data_dir)
    paths = [_write(where, d, 1700000001 + i, suffix, lines, last_eol) for i, (d, suffix, lines, last_eol) in enumerate(files)]
    dry = run(paths, dry_run=True, at=TEST_AT)
    out["dry-run receipts"] = _receipts(data_dir, dry)
    out["dry-run reject rows"] = _problems(dry)
    out["profiles after the dry run"] = _profiles(data_dir)
    out["receipts"] = _receipts(data_dir, run(paths, dry_run=False, at=TEST_AT))
    out["profiles"] = _profiles(data_dir)
    return out


def _compare(stores: dict[str, Path], prior, files, chunk_lines: int) -> None:
    results = {mode: _outcomes(data_dir, mode, prior, files, chunk_lines) for mode, data_dir in stores.items()}
    native, sql = results["native"], results["sql"]
    assert list(native) == list(sql)
    for what in sql:
        assert native[what] == sql[what], f"native merge on/off: {what} differ"


@settings(max_examples=30, deadline=None)
@given(case=job_files())
def test_native_kv_matches_sql(case):
    with tempfile.TemporaryDirectory() as root:
        _compare(_twin_stores(Path(root)), *case)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@settings(max_examples=8, deadline=None)
@given(case=job_files())
def test_native_kv_falls_back_on_other_rules(variant, case):
    with tempfile.TemporaryDirectory() as root:
        _compare(_twin_stores(Path(root), variant), *case)


# -- the comparison is not vacuous ----------------------------------------------------------------

def test_native_kv_merge_is_taken(tmp_path):
    """Guards the comparisons above: key-value profiles of customer IDs really are merged
    natively, with the results of the SQL plan."""
    assert kv_profiles.available(), "the native extension is not built: reinstall with `pip install -e .`"
    stores = _twin_stores(tmp_path)
    lines = [
        "Ab3-x_9Q\tcolor=red, \"price\" = \"20\",d_sid=2201",  # 2203, 2225, 2211, 2201 (2216: no tier, false)
        "Ab3-x_9Q\t123,,-SIZE=010",  # 2204, 2205, 2206
        "zz.9\tmake=vw,model=Golf,tier=gold,d_sid=2301",  # 2210; tier=gold: 2216 false; 2301 fails validation
        "U-1\tother=v",  # no trait realized
        "crm_42\turl=\"www.sport.com/a,b=c\",page=x.HTML,d_sid=424242",  # 2213, 2214, 2215; unknown trait
    ]
    expected_profiles = [("Ab3-x_9Q", s) for s in (2201, 2203, 2204, 2205, 2206, 2211, 2225)] + \
        [("crm_42", s) for s in (2213, 2214, 2215)] + [("zz.9", 2210)]
    seen: list[int] = []
    real = kv_profiles.merge_chunk

    def spy(*args, **kwargs):
        merged = real(*args, **kwargs)
        seen.append(int(np.asarray(merged.simple).sum()))
        return merged

    counters = {}
    for mode, data_dir in stores.items():
        path = _write(data_dir.parent, "22", 1600000000, "sync", lines)
        seen.clear()
        with mock.patch.object(kv_profiles, "merge_chunk", spy):
            result = _run(data_dir, [path], mode=mode, dry_run=False, at=TEST_AT)
        # one chunk; every line belongs to a simple profile
        assert seen == ([5] if mode == "native" else []), f"{mode}: lines merged natively per chunk: {seen}"
        counters[mode] = result.receipts[0].counters
        assert [(p[1], p[2], p[3]) for p in _profiles(data_dir)] == [(22, *p) for p in expected_profiles]
    assert counters["native"] == counters["sql"]
    c = counters["sql"]
    assert (c["records_received"], c["stored_records"], c["no_trait_realized"], c["total_realized_traits"]) == (5, 4, 1, 11)
    assert (c["total_traits_failed_validation"], c["total_users_with_failed_validation"]) == (1, 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_native_kv_steps_aside(tmp_path, variant):
    """Guards the fallback test above: a line with a key that `matchesregex`/`matcheswords`
    reads is left to the plan (its profile's other lines too), and a rule true for a line
    without signals keeps the native pass out of the data source altogether."""
    lines = ["u1\turl=www.sport.com", "u2\tcolor=red", "u3\ttitle=digital SLR camera", "u4\tcolor=red", "u4\tTITLE=slr"]
    merged_lines = []
    real = kv_profiles.merge_chunk

    def spy(chunk, *args, **kwargs):
        merged = real(chunk, *args, **kwargs)
        merged_lines.extend(n for n, simple in zip(chunk.column("line_no").to_pylist(), np.asarray(merged.simple)) if simple)
        return merged

    stores = _twin_stores(tmp_path, variant)
    with mock.patch.object(kv_profiles, "merge_chunk", spy):
        _compare(stores, ("22", []), [("22", "sync", lines, True)], 1_000_000)
    if variant == "regex":
        assert sorted(set(merged_lines)) == [2], f"natively merged lines: {merged_lines}"
    else:
        assert merged_lines == [], f"natively merged lines: {merged_lines}"
    profiles = {(p[2], p[3]) for p in _profiles(stores["native"])}
    assert ("u1", 2230) in profiles if variant == "regex" else ("u2", 2232) in profiles
