"""Applying and exporting taxonomies against a real DuckDB store (SPEC §11.1, §11.2).

Golden files: ``tests/fixtures/taxonomy/references/NAME.yaml`` is applied on top of the demo
taxonomy and must fail with exactly the problems in ``NAME.problems``, changing nothing.
Regenerate after a deliberate change with ``ONRAMP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from onramp.errors import TaxonomyError
from onramp.formats.ids import GLOBAL_DEVICE_SOURCES
from onramp.settings import load_settings
from onramp.store.db import connect
from onramp.taxonomy import (
    ApplySummary,
    Counts,
    Taxonomy,
    apply_taxonomy,
    demo_taxonomy_text,
    export_taxonomy,
    load_taxonomy,
)
from onramp.taxonomy import apply as apply_module

REFERENCES = Path(__file__).parents[1] / "fixtures" / "taxonomy" / "references"
GOLDEN = sorted(REFERENCES.glob("*.yaml"))
TABLES = ("partners", "data_sources", "traits", "segments", "destinations", "access_mappings")
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(load_settings(data_dir=tmp_path / "store"))
    yield connection
    connection.close()


@pytest.fixture
def demo_con(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    apply_taxonomy(con, load(demo_taxonomy_text()), now=NOW)
    return con


def load(text: str) -> Taxonomy:
    taxonomy, _ = load_taxonomy(text)
    return taxonomy


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every taxonomy row, sorted, for whole-store comparisons."""
    return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def counts(summary: ApplySummary) -> dict[str, tuple[int, int, int]]:
    return {s: (c.created, c.updated, c.unchanged) for s, c in summary.counts.items()}


# --- demo ------------------------------------------------------------------------------


def test_demo_taxonomy_applies_cleanly(con: duckdb.DuckDBPyConnection) -> None:
    summary = apply_taxonomy(con, load(demo_taxonomy_text()), now=NOW)
    assert counts(summary) == {
        "partners": (2, 0, 0),
        "data_sources": (4, 0, 0),
        "traits": (10, 0, 0),
        "segments": (3, 0, 0),
        "destinations": (1, 0, 0),
        "access_mappings": (1, 0, 0),
    }
    assert summary.created == 21 and summary.changed
    assert con.execute("SELECT pid, name, contacts FROM partners ORDER BY pid").fetchall() == [
        (7, "acme", ["ops@acme.example", "data@acme.example"]),
        (8, "bravo", ["onboarding@bravo.example"]),
    ]
    assert con.execute(
        "SELECT dpid, owner_pid, id_type, inbound_id_type, id_definition, crm_retention_days, is_global "
        "FROM data_sources WHERE NOT is_global ORDER BY dpid"
    ).fetchall() == [
        (21, 7, "cookie", "customer_id", None, 720, False),
        (22, 7, "cross_device", "customer_id", "person", 360, False),
        (23, 7, "cookie", "platform_uuid", None, 720, False),
        (31, 8, "cookie", "customer_id", None, 720, False),
    ]
    assert con.execute("SELECT count(*) FROM data_sources WHERE is_global").fetchone() == (len(GLOBAL_DEVICE_SOURCES),)
    assert con.execute("SELECT did, segments, settings::VARCHAR FROM destinations").fetchall() == [
        (1234, [5001, 5002, 5003], '{"compress": true}')
    ]
    assert con.execute("SELECT * FROM access_mappings").fetchall() == [(8, 21)]


def test_demo_trait_rows_keep_rule_text_and_defaults(demo_con: duckdb.DuckDBPyConnection) -> None:
    assert demo_con.execute("SELECT rule, ttl_days, type, description FROM traits WHERE sid = 105").fetchone() == (
        '(c_make=="A") AND (c_model=="B")',
        120,
        "onboarded",
        None,
    )


# --- idempotence and partial apply --------------------------------------------------------


def test_applying_the_same_file_twice_changes_nothing(demo_con: duckdb.DuckDBPyConnection) -> None:
    before = snapshot(demo_con)
    summary = apply_taxonomy(demo_con, load(demo_taxonomy_text()), now=NOW + timedelta(days=1))
    assert summary.created == summary.updated == 0 and summary.unchanged == 21
    assert not summary.changed
    assert all(c == Counts(0, 0, c.unchanged) for c in summary.counts.values())
    assert snapshot(demo_con) == before


def test_partial_apply_creates_and_updates_only_what_the_file_names(demo_con: duckdb.DuckDBPyConnection) -> None:
    before = snapshot(demo_con)
    summary = apply_taxonomy(
        demo_con,
        load(
            """\
traits:
  - {sid: 102, name: Tablet shoppers, description: Viewed a product whose name contains tab,
     data_source: 21, type: onboarded, rule: 'product contains "tab"', data_category: Shopping, ttl_days: 60}
  - {sid: 110, name: Phone shoppers, data_source: 21, type: onboarded, rule: 'product contains "phone"'}
  - {sid: 104, name: Interest code 1, description: Bare number 1 or ic=1 on the line (D-30),
     data_source: 21, type: onboarded, rule: 'ic == "1"'}
"""
        ),
        now=NOW,
    )
    assert counts(summary)["traits"] == (1, 1, 1)
    assert summary.created == 1 and summary.updated == 1 and summary.unchanged == 1
    after = snapshot(demo_con)
    for table in TABLES:
        if table != "traits":
            assert after[table] == before[table]
    traits = {row[0]: row for row in after["traits"]}
    assert traits[102][6] == 60 and traits[110][1] == "Phone shoppers"
    assert len(traits) == len(before["traits"]) + 1
    unchanged = [r for r in before["traits"] if r[0] not in (102, 110)]
    assert all(r in after["traits"] for r in unchanged)


def test_an_entity_is_replaced_as_declared(demo_con: duckdb.DuckDBPyConnection) -> None:
    # Omitted optional fields take their defaults: the file says what the entity is.
    apply_taxonomy(
        demo_con,
        load("traits:\n  - {sid: 103, name: Sports readers, data_source: 21, type: onboarded}\n"),
        now=NOW,
    )
    assert demo_con.execute("SELECT rule, ttl_days FROM traits WHERE sid = 103").fetchone() == (None, 120)


def test_updates_of_every_kind_are_counted(demo_con: duckdb.DuckDBPyConnection) -> None:
    summary = apply_taxonomy(
        demo_con,
        load(
            """\
partners:
  - {pid: 8, name: bravo, contacts: [ops@bravo.example]}
data_sources:
  - {dpid: 31, owner: 8, name: Bravo web cookies, id_type: cookie, inbound_id_type: platform_uuid}
segments:
  - {sid: 5003, name: Interest code 1 anywhere, owner: 7, expression: '104T'}
destinations:
  - {did: 1234, owner: 7, name: Acme DSP, sync_type: s3, sync_mode: full, segments: [5001],
     location: 's3://onramp-outbound/acme-dsp/', split_size: 1000000}
access_mappings:
  - {pid: 8, dpid: 21}
  - {pid: 8, dpid: 22}
"""
        ),
        now=NOW,
    )
    assert counts(summary) == {
        "partners": (0, 1, 0),
        "data_sources": (0, 1, 0),
        "traits": (0, 0, 0),
        "segments": (0, 1, 0),
        "destinations": (0, 1, 0),
        "access_mappings": (1, 0, 1),
    }
    assert demo_con.execute("SELECT sync_mode, segments, pid_alias, settings::VARCHAR FROM destinations").fetchall() == [
        ("full", [5001], None, '{"split_size": 1000000}')
    ]
    assert demo_con.execute("SELECT merge_rule FROM segments WHERE sid = 5003").fetchone() == (
        "device_and_authenticated",
    )


def test_references_resolve_against_the_store(con: duckdb.DuckDBPyConnection) -> None:
    apply_taxonomy(con, load("partners:\n  - {pid: 7, name: acme}\n"), now=NOW)
    apply_taxonomy(
        con,
        load("data_sources:\n  - {dpid: 21, owner: 7, name: Web, id_type: cookie, inbound_id_type: customer_id}\n"),
        now=NOW,
    )
    summary = apply_taxonomy(
        con,
        load(
            "traits:\n  - {sid: 1, name: t, data_source: 21, type: onboarded}\n"
            "segments:\n  - {sid: 2, name: s, owner: 7, expression: '1T'}\n"
            "access_mappings:\n  - {pid: 7, dpid: 21}\n"
        ),
        now=NOW,
    )
    assert summary.created == 3


def test_summary_to_dict(con: duckdb.DuckDBPyConnection) -> None:
    summary = apply_taxonomy(con, load("partners:\n  - {pid: 7, name: acme}\n"), now=NOW)
    assert summary.to_dict()["partners"] == {"created": 1, "updated": 0, "unchanged": 0}
    assert list(summary.to_dict()) == list(TABLES)


def test_empty_taxonomy_changes_nothing(demo_con: duckdb.DuckDBPyConnection) -> None:
    before = snapshot(demo_con)
    summary = apply_taxonomy(demo_con, Taxonomy(), now=NOW)
    assert not summary.changed and summary.unchanged == 0
    assert snapshot(demo_con) == before


# --- validation against the store: all or nothing ---------------------------------------------


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_reference_problems_change_nothing(demo_con: duckdb.DuckDBPyConnection, path: Path) -> None:
    before = snapshot(demo_con)
    with pytest.raises(TaxonomyError) as info:
        apply_taxonomy(demo_con, load(path.read_text(encoding="utf-8")), now=NOW)
    actual = [str(p) for p in info.value.problems]
    expected_file = path.with_suffix(".problems")
    if os.environ.get("ONRAMP_UPDATE_GOLDEN"):
        expected_file.write_text("\n".join(actual) + "\n", encoding="utf-8")
    assert actual == expected_file.read_text(encoding="utf-8").splitlines()
    assert snapshot(demo_con) == before


def test_every_reference_golden_file_has_expectations() -> None:
    assert GOLDEN
    assert {p.stem for p in REFERENCES.glob("*.problems")} == {p.stem for p in GOLDEN}


def test_one_bad_reference_rejects_the_whole_file(con: duckdb.DuckDBPyConnection) -> None:
    before = snapshot(con)
    text = demo_taxonomy_text() + "  - {pid: 9, dpid: 21}\n"  # appended to access_mappings
    with pytest.raises(TaxonomyError) as info:
        apply_taxonomy(con, load(text), now=NOW)
    assert [str(p) for p in info.value.problems] == [
        "access_mappings[1].pid: partner 9 does not exist — declare it under partners: or use an existing pid"
    ]
    assert snapshot(con) == before


def test_a_failure_while_writing_rolls_everything_back(
    demo_con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(demo_con)
    real_params = apply_module.params
    calls = {"n": 0}

    def failing_params(section: str, row: dict[str, Any]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_params(section, row)

    monkeypatch.setattr(apply_module, "params", failing_params)
    text = demo_taxonomy_text().replace("name: acme", "name: acme2").replace("ttl_days: 30", "ttl_days: 31")
    text += "  - {pid: 7, dpid: 31}\n"
    with pytest.raises(RuntimeError, match="disk full"):
        apply_taxonomy(demo_con, load(text), now=NOW)
    assert calls["n"] == 3
    assert snapshot(demo_con) == before
    # The connection is usable afterwards (no transaction left open).
    monkeypatch.setattr(apply_module, "params", real_params)
    assert apply_taxonomy(demo_con, load(text), now=NOW).updated == 2


def test_segment_semantics_are_validated_with_trait_types(demo_con: duckdb.DuckDBPyConnection) -> None:
    # D-48: an expression true for an empty profile is rejected.
    with pytest.raises(TaxonomyError) as info:
        apply_taxonomy(
            demo_con, load("segments:\n  - {sid: 6001, name: Not sports, owner: 7, expression: 'NOT 103T'}\n"), now=NOW
        )
    assert [p.path for p in info.value.problems] == ["segments[0].expression"]


def test_programmatic_taxonomy_is_checked_like_a_file(con: duckdb.DuckDBPyConnection) -> None:
    taxonomy = Taxonomy.model_validate(
        {"traits": [{"sid": 1, "name": "t", "data_source": 21, "type": "rule_based"}]}
    )
    with pytest.raises(TaxonomyError) as info:
        apply_taxonomy(con, taxonomy, now=NOW)
    assert [p.path for p in info.value.problems] == ["traits[0].data_source", "traits[0].rule"]


# --- error sampling (§7.4) ---------------------------------------------------------------------


def _sampling(con: duckdb.DuckDBPyConnection) -> datetime | None:
    (until,) = con.execute("SELECT error_sampling_until FROM data_sources WHERE dpid = 31").fetchone()  # type: ignore[misc]
    return until


SOURCE_31 = "data_sources:\n  - {dpid: 31, owner: 8, name: Bravo web cookies, id_type: cookie, inbound_id_type: customer_id%s}\n"


def test_error_sampling_runs_fourteen_days_and_is_not_extended_by_reapplying(
    demo_con: duckdb.DuckDBPyConnection,
) -> None:
    on, off = load(SOURCE_31 % ", error_sampling: true"), load(SOURCE_31 % ", error_sampling: false")
    naive_now = NOW.replace(tzinfo=None)
    assert counts(apply_taxonomy(demo_con, on, now=NOW))["data_sources"] == (0, 1, 0)
    assert _sampling(demo_con) == naive_now + timedelta(days=14)
    assert counts(apply_taxonomy(demo_con, on, now=NOW + timedelta(days=3)))["data_sources"] == (0, 0, 1)
    assert _sampling(demo_con) == naive_now + timedelta(days=14)
    # Omitted: the state is left alone.
    assert counts(apply_taxonomy(demo_con, load(SOURCE_31 % ""), now=NOW))["data_sources"] == (0, 0, 1)
    assert _sampling(demo_con) == naive_now + timedelta(days=14)
    # After it switched itself off, true starts a new period.
    later = NOW + timedelta(days=20)
    apply_taxonomy(demo_con, on, now=later, error_sampling_days=7)
    assert _sampling(demo_con) == later.replace(tzinfo=None) + timedelta(days=7)
    assert counts(apply_taxonomy(demo_con, off, now=later))["data_sources"] == (0, 1, 0)
    assert _sampling(demo_con) is None


# --- export ------------------------------------------------------------------------------------

EXTRAS = """\
data_sources:
  - {dpid: 24, owner: 7, name: Acme GAIDs, id_type: device_advertising_id, inbound_id_type: customer_id,
     error_sampling: true, crm_retention_days: 30}
traits:
  - {sid: 120, name: 'Every field, with a dash', description: '', data_source: 24, type: rule_based,
     rule: 'c_x == "1" OR c_y startswith "ab"', ttl_days: 0, integration_code: '00123', folder_id: 7,
     data_category: Auto, event_type: conversion}
  - {sid: 121, name: Quoted number code, data_source: 24, type: onboarded, integration_code: '123'}
segments:
  - {sid: 5101, name: GAID owners, owner: 7, expression: '120T AND NOT 121T', merge_rule: device_only}
destinations:
  - did: 1300
    owner: 8
    name: Bravo SFTP
    master_dpid: 20915
    partner_dpid: 31
    pid_alias: BravoCo
    sync_type: ftp
    sync_mode: full
    segments: [5101, 5001]
    location: sftp://bravo@files.bravo.example:22/in/
    file_name_template: '<SYNC_TYPE>_<ORDER_ID>_<TIMESTAMP>SPLITNUM.sync'
    header_template: '<ORDER_ID><TAB><SYNC_MODE>'
    content_template: '<UUID> <SEGMENT_LIST:{seg|<seg.alias>}; separator=",">'
    compress: false
    split_size: 1000000000
access_mappings:
  - {pid: 8, dpid: 22}
"""


def test_export_round_trip_reproduces_the_tables(demo_con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    apply_taxonomy(demo_con, load(EXTRAS), now=NOW)
    text = export_taxonomy(demo_con, now=NOW)
    fresh = connect(load_settings(data_dir=tmp_path / "fresh"))
    try:
        summary = apply_taxonomy(fresh, load(text), now=NOW)
        assert summary.updated == 0 and summary.unchanged == 0
        assert snapshot(fresh) == snapshot(demo_con)
        assert export_taxonomy(fresh, now=NOW) == text
        # Applying the export back onto its source is a no-op.
        assert not apply_taxonomy(demo_con, load(text), now=NOW).changed
    finally:
        fresh.close()


def test_export_leaves_out_global_sources_and_defaults(demo_con: duckdb.DuckDBPyConnection) -> None:
    text = export_taxonomy(demo_con, now=NOW)
    for absent in ("20914", "GAID", "ttl_days: 120", "crm_retention_days: 720", "master_dpid", "merge_rule: device_and",
                   "error_sampling", "null", "contacts: []"):
        assert absent not in text
    assert "merge_rule: device_only" in text and "ttl_days: 0" in text
    assert "expression: '(101T OR 102T) AND NOT 103T'" in text
    assert "segments: [5001, 5002, 5003]" in text


def test_export_shows_active_error_sampling_only(demo_con: duckdb.DuckDBPyConnection) -> None:
    apply_taxonomy(demo_con, load(SOURCE_31 % ", error_sampling: true"), now=NOW)
    assert "error_sampling: true" in export_taxonomy(demo_con, now=NOW + timedelta(days=13))
    assert "error_sampling" not in export_taxonomy(demo_con, now=NOW + timedelta(days=15))


def test_export_of_an_empty_store_loads_as_empty(con: duckdb.DuckDBPyConnection) -> None:
    text = export_taxonomy(con)
    taxonomy, warnings = load_taxonomy(text)
    assert taxonomy == Taxonomy() and warnings == []
