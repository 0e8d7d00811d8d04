"""The shipped partner-file generator writes what SPEC §3.4 / §2.3.2 allow, deterministically."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from onramp.testing import generate as gen

UUID_RE = re.compile(r"^[0-9]{38}$")
CRM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{11,23}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # SPEC §1.4
DSID_ITEM_RE = re.compile(r"^ *(d_sid|d_unsid) *= *([0-9]+) *$")
# SPEC §3.4 element forms the key-value generator uses: a bare code or key=value, each side
# quoted or not; unquoted parts have no comma, '=', quote or TAB.
KV_ITEM_RE = re.compile(r'^ *(?:([0-9]+)|("[^"\t]+"|[^,="\t]+?) *= *("[^"\t]+"|[^,="\t]+?)) *$')
SECTION_KEYS = {
    "partners": {"pid", "name", "contacts"},
    "data_sources": {"dpid", "owner", "name", "id_type", "inbound_id_type", "id_definition", "notify"},
    "traits": {"sid", "name", "data_source", "type", "rule", "ttl_days"},
}


def item_ok(item: str) -> bool:
    m = KV_ITEM_RE.match(item)
    if not m:
        return False
    if m[2] and m[2].strip('"').lstrip("-").lower() in ("d_sid", "d_unsid"):
        return m[3].strip('"').isdigit()
    return True


def split_items(rest: str) -> list[str]:
    """Split an item list on commas outside double quotes (SPEC §3.4)."""
    items, current, quoted = [], [], False
    for ch in rest:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    assert not quoted, f"unbalanced quote in {rest!r}"
    items.append("".join(current))
    return items


def read_lines(path: Path) -> list[str]:
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    assert raw.endswith(b"\n") and not raw.startswith(b"\n")
    lines = raw.decode("ascii").split("\n")[:-1]
    assert all(lines), "no blank lines"
    return lines


@pytest.fixture(scope="module")
def taxonomy() -> dict:
    return gen.bench_taxonomy()


@pytest.fixture(scope="module")
def dsid_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    path = tmp_path_factory.mktemp("dsid") / "ftp_dpm_21_1700000000.sync"
    stats = gen.write_dsid_file(path, 5000, seed=3)
    assert stats["lines"] == 5000 and stats["bytes"] == path.stat().st_size
    return read_lines(path)


@pytest.fixture(scope="module")
def kv_lines(tmp_path_factory: pytest.TempPathFactory, taxonomy: dict) -> list[str]:
    path = tmp_path_factory.mktemp("kv") / "ftp_dpm_22_1700000000.sync"
    gen.write_kv_file(path, 5000, seed=3, taxonomy=taxonomy)
    return read_lines(path)


def test_dsid_lines_follow_the_grammar(dsid_lines: list[str]) -> None:
    assert len(dsid_lines) == 5000
    counts, kinds = Counter(), Counter()
    for line in dsid_lines:
        assert line.count("\t") == 1
        uuid, rest = line.split("\t")
        assert UUID_RE.match(uuid)
        items = rest.split(",")
        assert 1 <= len(items) <= 8
        for item in items:
            m = DSID_ITEM_RE.match(item)
            assert m, item
            assert 100_000 <= int(m[2]) < 105_000
            kinds[m[1]] += 1
        counts[len(items)] += 1
    assert set(counts) == set(range(1, 9))  # the whole range of item counts occurs
    assert 0 < kinds["d_unsid"] < 0.05 * kinds["d_sid"]


def test_dsid_traits_are_zipf_distributed(dsid_lines: list[str]) -> None:
    sids = Counter(re.findall(r"d_sid=(\d+)", "\n".join(dsid_lines)))
    top = sids.most_common()
    assert top[0][1] > 20 * top[len(top) // 2][1]  # a heavy head ...
    assert len(sids) > 500  # ... and a long tail


def test_kv_lines_follow_the_grammar(kv_lines: list[str], taxonomy: dict) -> None:
    rule_keys = {re.match(r"\w+", t["rule"])[0] for t in taxonomy["traits"] if t.get("rule")}
    keys_seen = Counter()
    forms = Counter()
    for line in kv_lines:
        assert line.count("\t") == 1
        crm, rest = line.split("\t")
        assert CRM_RE.match(crm) and not EMAIL_RE.match(crm) and ":" not in crm
        items = [i for i in split_items(rest) if i.strip()]  # empty items are allowed and ignored
        assert 3 <= len(items) <= 15
        for item in items:
            m = KV_ITEM_RE.match(item)
            assert m, item
            if m[1]:
                forms["bare"] += 1
                continue
            key, value = m[2].strip('"').lstrip("-").lower(), m[3].strip('"')
            assert key in rule_keys | set(gen._UNRULED_KEYS) and value.strip()
            keys_seen[key in rule_keys] += 1
            forms[(m[2].startswith('"'), m[3].startswith('"'))] += 1
        forms["spaces"] += " = " in rest or ", " in rest
        forms["empty item"] += ",," in rest
    assert 0.03 < keys_seen[False] / keys_seen.total() < 0.15  # some keys no rule reads
    # Every quoting style of SPEC §3.4, bare integration codes, spaces and empty items occur.
    for form in ["bare", "spaces", "empty item", (False, False), (True, False), (False, True), (True, True)]:
        assert forms[form] > 0, form


def test_kv_values_match_rules_often_but_not_always(kv_lines: list[str], taxonomy: dict) -> None:
    equality = set()
    for t in taxonomy["traits"]:
        if m := re.match(r'^(\w+) == "?([^"]*)"?$', t.get("rule") or ""):
            equality.add((m[1], m[2].lower()))
    matched = total = 0
    for line in kv_lines:
        for item in split_items(line.split("\t")[1]):
            m = KV_ITEM_RE.match(item)
            if not item.strip():
                continue
            key, value = ("ic", m[1]) if m[1] else (m[2].strip('"').lstrip("-").lower(), m[3].strip('"').lower())
            matched += (key, value) in equality
            total += 1
    assert 0.4 < matched / total < 0.95


def test_sync_file_links_generated_users(tmp_path: Path) -> None:
    path = tmp_path / "adobe_id_0_22_1700000000.sync.gz"
    gen.write_sync_file(path, 1000, n_users=5000)
    rows = [line.split("\t") for line in read_lines(path)]
    assert len(rows) == 1000 and all(len(r) == 2 for r in rows)
    assert all(UUID_RE.match(u) and CRM_RE.match(c) for u, c in rows)
    assert len({u for u, _ in rows}) == 1000
    by_crm = {gen.user_crm_id(i): gen.user_uuid(i) for i in range(5000)}
    assert all(by_crm[c] == u for u, c in rows)


def test_generated_ids_are_well_formed_and_distinct() -> None:
    users = np.arange(200_000)
    uuids = gen.platform_uuid_matrix(users)
    crm = gen.crm_id_matrix(users)
    assert ((uuids >= ord("0")) & (uuids <= ord("9"))).all()
    assert len(np.unique(uuids.view("S38"))) == len(users)
    assert len(np.unique(crm.view("S24"))) == len(users)
    lengths = (crm != 0).sum(axis=1)
    assert lengths.min() == 12 and lengths.max() == 24
    assert gen.user_uuid(7) == uuids[7].tobytes().decode()


def test_taxonomy_counts_and_schema(taxonomy: dict) -> None:
    assert set(taxonomy) == {"partners", "data_sources", "traits"}
    for section, allowed in SECTION_KEYS.items():
        for entry in taxonomy[section]:
            assert set(entry) <= allowed, (section, set(entry) - allowed)
    assert taxonomy["partners"] == [{"pid": 7, "name": "acme", "contacts": ["ops@acme.example"]}]
    sources = {d["dpid"]: d for d in taxonomy["data_sources"]}
    assert (sources[21]["id_type"], sources[21]["inbound_id_type"]) == ("cookie", "platform_uuid")
    assert (sources[22]["id_type"], sources[22]["inbound_id_type"]) == ("cross_device", "customer_id")
    traits = taxonomy["traits"]
    assert len({t["sid"] for t in traits}) == len(traits)
    onboarded = [t for t in traits if t["data_source"] == 21]
    assert [t["sid"] for t in onboarded] == list(range(100_000, 105_000))
    assert not any("rule" in t for t in onboarded)
    rules = [t["rule"] for t in traits if t["data_source"] == 22]
    assert all(t["type"] == "onboarded" for t in traits)
    equality = [r for r in rules if " == " in r]
    ranges = [r for r in rules if re.fullmatch(r"(\w+) >= [\d.]+ AND \1 <= [\d.]+", r)]
    contains = [r for r in rules if re.fullmatch(r'\w+ contains "\w+"', r)]
    assert (len(equality), len(ranges), len(contains), len(rules)) == (20_000, 50, 50, 20_100)
    assert len(set(equality)) == 20_000
    keys = Counter(r.split()[0] for r in rules)
    assert 45 <= len(keys) <= 60
    assert keys["ic"] > 5000 and sum(k.startswith("c_") for k in keys) > 30
    assert any(re.fullmatch(r'\w+ == "\d+"', r) and not r.startswith("ic ") for r in equality)  # quoted numerics
    assert all(re.fullmatch(r"[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*", k) for k in keys)  # SPEC §4.2
    assert not any(set(t["name"]) & set(",|-\t") for t in traits)  # D-40


def test_taxonomy_loads_with_the_taxonomy_models(taxonomy: dict) -> None:
    from onramp.taxonomy.models import Taxonomy

    parsed = Taxonomy.model_validate(taxonomy)
    assert len(parsed.traits) == 25_100


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, taxonomy: dict) -> None:
    for name, write in [("d", gen.write_dsid_file), ("k", gen.write_kv_file)]:
        a, b, c = (tmp_path / f"{name}{i}.txt" for i in range(3))
        write(a, 3000, seed=5)
        write(b, 3000, seed=5)
        write(c, 3000, seed=6)
        assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert gen.bench_taxonomy(seed=2) == gen.bench_taxonomy(seed=2) != gen.bench_taxonomy(seed=3)


def test_gzip_output_has_the_same_lines(tmp_path: Path) -> None:
    gen.write_kv_file(tmp_path / "a.txt", 2000, seed=9)
    stats = gen.write_kv_file(tmp_path / "a.sync.gz", 2000, seed=9)
    assert gzip.open(tmp_path / "a.sync.gz").read() == (tmp_path / "a.txt").read_bytes()
    assert stats["file_bytes"] < stats["bytes"] / 2


def test_chunks_join_seamlessly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CHUNK_LINES", 700)
    monkeypatch.setattr(gen, "KV_CHUNK_LINES", 300)
    gen.write_dsid_file(tmp_path / "d.txt", 2000)
    gen.write_kv_file(tmp_path / "k.txt", 1000)
    gen.write_sync_file(tmp_path / "s.txt", 1500)
    for name, n, id_re in [("d", 2000, UUID_RE), ("k", 1000, CRM_RE), ("s", 1500, UUID_RE)]:
        lines = read_lines(tmp_path / f"{name}.txt")
        assert len(lines) == n and all(id_re.match(line.split("\t")[0]) for line in lines)


def test_assemble_matches_a_plain_join() -> None:
    # _assemble relies on numpy writing 1-D fancy assignments in index order.
    rng = np.random.default_rng(0)
    words = [bytes(rng.integers(33, 127, n).astype(np.uint8)) for n in rng.integers(0, 70, 3000)]
    tokens = gen._Tokens(words)
    pick = rng.integers(0, len(words), 50_000)
    out = gen._assemble(tokens.pool, tokens.offset[pick], tokens.length[pick])
    assert out.tobytes() == b"".join(words[i] for i in pick)


def test_bad_lines_are_malformed() -> None:
    bad = gen.bad_lines()
    assert len(bad) >= 7
    assert max(len(line.encode()) for line in bad) > 102_400
    for line in bad:
        uid, tab, rest = line.partition("\t")
        well_formed = (
            tab
            and "\t" not in rest
            and len(line.encode()) <= 102_400
            and CRM_RE.match(uid)
            and not EMAIL_RE.match(uid)
            and any(i.strip() for i in rest.split(","))
            and all(not i.strip() or item_ok(i) for i in rest.split(","))
            and rest.count('"') % 2 == 0
        )
        assert not well_formed, line[:80]
