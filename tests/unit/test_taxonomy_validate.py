"""Pure taxonomy checks: references against a known store, ordering, row mapping (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from onramp.errors import Problem
from onramp.taxonomy.load import loc_path
from onramp.taxonomy.models import Taxonomy
from onramp.taxonomy.rows import entity_row, sampling_until
from onramp.taxonomy.validate import Known, KnownDataSource, check_references, indexed, sort_problems

NOW = datetime(2026, 11, 22, 10, 0)

STORE = Known(
    partners={7: "acme"},
    data_sources={**Known.builtin().data_sources, 21: KnownDataSource(7, False, "acme_cookie", "Acme web")},
    traits={101: "onboarded", 109: "rule_based"},
    segments=frozenset({5001}),
)


def refs(document: dict[str, object], known: Known = STORE) -> list[str]:
    return [str(p) for p in check_references(indexed(Taxonomy.model_validate(document)), known)]


def test_references_resolve_in_the_store_without_touching_it() -> None:
    assert refs(
        {
            "traits": [{"sid": 1, "name": "t", "data_source": 21, "type": "onboarded"}],
            "segments": [{"sid": 2, "name": "s", "owner": 7, "expression": "1T AND 101T"}],
            "destinations": [
                {"did": 3, "owner": 7, "name": "d", "master_dpid": 20915, "sync_type": "s3", "sync_mode": "full",
                 "segments": [2, 5001], "location": "s3://b/p/"}
            ],
            "access_mappings": [{"pid": 7, "dpid": 21}],
        }
    ) == []


def test_builtin_store_knows_only_global_sources() -> None:
    assert refs({"traits": [{"sid": 1, "name": "t", "data_source": 21, "type": "onboarded"}]}, Known.builtin()) == [
        "traits[0].data_source: data source 21 does not exist — declare it under data_sources: or use an existing dpid"
    ]


def test_recency_on_onboarded_traits_is_rejected_d47() -> None:
    (problem,) = refs(
        {"segments": [{"sid": 2, "name": "s", "owner": 7, "expression": "FREQUENCY([101T] <= 5D) >= 2"}]}
    )
    assert problem.startswith("segments[0].expression: ") and "D-47" in problem


def test_recency_on_rule_based_traits_is_accepted() -> None:
    assert refs({"segments": [{"sid": 2, "name": "s", "owner": 7, "expression": "FREQUENCY([109T] <= 5D) >= 2"}]}) == []


def test_a_file_can_change_a_trait_type_that_segments_rely_on() -> None:
    # The file's version of trait 101 wins over the store's when segments are checked.
    assert refs(
        {
            "traits": [{"sid": 101, "name": "t", "data_source": 21, "type": "rule_based", "rule": 'a == "1"'}],
            "segments": [{"sid": 2, "name": "s", "owner": 7, "expression": "FREQUENCY([101T] <= 5D) >= 2"}],
        }
    ) == []


def test_partner_names_stay_unique_across_file_and_store() -> None:
    assert refs({"partners": [{"pid": 8, "name": "bravo"}, {"pid": 9, "name": "bravo"}, {"pid": 7, "name": "acme"}]}) == [
        "partners[1].name: name 'bravo' is already used by partner 8 — partner names are S3 prefixes and FTP users "
        "and must be unique; choose another"
    ]
    # Renaming 7 frees its old name for another partner in the same file.
    assert refs({"partners": [{"pid": 7, "name": "acme-old"}, {"pid": 9, "name": "acme"}]}) == []


def test_problems_sort_in_file_order() -> None:
    paths = [
        "access_mappings[0].pid",
        "traits[10].name",
        "traits[2].rule",
        "traits[2].sid",
        "line 3",
        "file",
        "partners[0].contacts[1]",
        "partners[0].contacts",
        "partners[0]",
        "destinations[0].segments[2]",
        "destinations[0].owner",
    ]
    assert [p.path for p in sort_problems([Problem(p, "m") for p in paths])] == [
        "file",
        "line 3",
        "partners[0]",
        "partners[0].contacts",
        "partners[0].contacts[1]",
        "traits[2].sid",
        "traits[2].rule",
        "traits[10].name",
        "destinations[0].owner",
        "destinations[0].segments[2]",
        "access_mappings[0].pid",
    ]


@pytest.mark.parametrize(
    ("loc", "path"), [((), "traits[3]"), (("rule",), "traits[3].rule"), (("notify", 2), "traits[3].notify[2]")]
)
def test_pydantic_locations_become_file_paths(loc: tuple[int | str, ...], path: str) -> None:
    assert loc_path("traits[3]", loc) == path


@pytest.mark.parametrize(
    ("flag", "current", "expected"),
    [
        (None, None, None),
        (None, NOW + timedelta(days=3), NOW + timedelta(days=3)),
        (None, NOW - timedelta(days=3), NOW - timedelta(days=3)),
        (False, NOW + timedelta(days=3), None),
        (True, None, NOW + timedelta(days=14)),
        (True, NOW + timedelta(days=3), NOW + timedelta(days=3)),
        (True, NOW - timedelta(days=1), NOW + timedelta(days=14)),
        (True, NOW, NOW + timedelta(days=14)),
    ],
)
def test_error_sampling_period(flag: bool | None, current: datetime | None, expected: datetime | None) -> None:
    assert sampling_until(flag, current, NOW, 14) == expected


def test_destination_settings_are_kept_together() -> None:
    taxonomy = Taxonomy.model_validate(
        {"destinations": [{"did": 1, "owner": 7, "name": "d", "sync_type": "http", "sync_mode": "iter",
                           "location": "https://x.example/in", "compress": False, "header_template": "<ORDER_ID>"}]}
    )
    row = entity_row("destinations", taxonomy.destinations[0], None, NOW, 14)
    assert row["settings"] == {"compress": False, "header_template": "<ORDER_ID>"}
    assert "compress" not in row and row["segments"] == []
