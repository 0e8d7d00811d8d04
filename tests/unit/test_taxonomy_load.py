"""Loading taxonomy files (SPEC §11.2): shapes, field rules and located problems.

Golden files: ``tests/fixtures/taxonomy/invalid/NAME.yaml`` must fail with exactly the
problems listed in ``NAME.problems`` (one per line, in order). Regenerate after a deliberate
change with ``ONRAMP_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from onramp.errors import Problem, TaxonomyError
from onramp.taxonomy import demo_taxonomy_text, load_taxonomy
from onramp.taxonomy.models import DataSource, Destination, Trait

INVALID = Path(__file__).parents[1] / "fixtures" / "taxonomy" / "invalid"
GOLDEN = sorted(INVALID.glob("*.yaml"))

MINIMAL = """\
partners:
  - {pid: 7, name: acme}
data_sources:
  - {dpid: 21, owner: 7, name: Acme web, id_type: cookie, inbound_id_type: customer_id}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(text)
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_invalid_file(path: Path) -> None:
    actual = problems_of(path.read_text(encoding="utf-8"))
    expected_file = path.with_suffix(".problems")
    if os.environ.get("ONRAMP_UPDATE_GOLDEN"):
        expected_file.write_text("\n".join(actual) + "\n", encoding="utf-8")
    assert actual == expected_file.read_text(encoding="utf-8").splitlines()


def test_every_golden_file_has_expectations() -> None:
    assert GOLDEN, "no golden files found"
    assert {p.stem for p in INVALID.glob("*.problems")} == {p.stem for p in GOLDEN}


def test_minimal_file_loads_with_defaults() -> None:
    taxonomy, warnings = load_taxonomy(MINIMAL)
    assert warnings == []
    (source,) = taxonomy.data_sources
    assert source.crm_retention_days == 720
    assert source.notify == [] and source.error_sampling is None and source.id_definition is None
    assert taxonomy.partners[0].contacts == []
    assert taxonomy.traits == [] and taxonomy.access_mappings == []


@pytest.mark.parametrize("text", ["", "# just a comment\n", "traits:\n", "partners: []\n"])
def test_empty_files_and_sections_are_empty_taxonomies(text: str) -> None:
    taxonomy, warnings = load_taxonomy(text)
    assert taxonomy.partners == [] and taxonomy.traits == [] and warnings == []


def test_trait_defaults() -> None:
    trait = Trait.model_validate({"sid": 1, "name": "x", "data_source": 21, "type": "onboarded"})
    assert trait.ttl_days == 120 and trait.rule is None


def test_segment_and_destination_defaults() -> None:
    taxonomy, _ = load_taxonomy(
        """\
destinations:
  - {did: 1, owner: 7, name: D, sync_type: ftp, sync_mode: full, location: "sftp://u@h:22/out"}
"""
    )
    (dest,) = taxonomy.destinations
    assert isinstance(dest, Destination)
    assert dest.master_dpid == 0 and dest.segments == [] and dest.partner_dpid is None and dest.compress is None


@pytest.mark.parametrize(
    ("value", "stored"), [("COOKIE", "cookie"), ("Cross_Device", "cross_device"), ("cookie", "cookie")]
)
def test_enumerations_are_case_insensitive(value: str, stored: str) -> None:
    source = DataSource.model_validate(
        {"dpid": 21, "owner": 7, "name": "x", "id_type": value, "inbound_id_type": "CUSTOMER_ID"}
    )
    assert source.id_type == stored and source.inbound_id_type == "customer_id"


def test_ecid_is_rejected_with_decision_reference() -> None:
    text = MINIMAL.replace("inbound_id_type: customer_id", "inbound_id_type: ecid")
    assert problems_of(text) == [
        "data_sources[0].inbound_id_type: inbound ID type 'ecid' is not supported [D-02] — "
        "use customer_id (partner user IDs) or platform_uuid (38-digit platform IDs)"
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Gender, female", "name 'Gender, female' contains commas"),
        ("Gender-female", "name 'Gender-female' contains dashes"),
        ("Gender \u2013 female", "name 'Gender \u2013 female' contains dashes"),
        ("Gender | female, F-1", "name 'Gender | female, F-1' contains commas and dashes and pipes"),
    ],
)
def test_trait_name_characters_to_avoid_warn_but_load(name: str, expected: str) -> None:
    text = MINIMAL + f"traits:\n  - {{sid: 1, name: '{name}', data_source: 21, type: onboarded}}\n"
    taxonomy, warnings = load_taxonomy(text)
    assert taxonomy.traits[0].name == name
    assert warnings == [
        Problem("traits[0].name", expected, "they cause trouble in file-based exchanges; accepted anyway [D-40]")
    ]


@pytest.mark.parametrize("name", ["Gender\tfemale", "Gender\nfemale"])
def test_trait_name_control_characters_are_rejected(name: str) -> None:
    text = MINIMAL + f'traits:\n  - {{sid: 1, name: "{name.encode("unicode_escape").decode()}", data_source: 21, type: onboarded}}\n'
    (problem,) = problems_of(text)
    assert problem.startswith("traits[0].name: name contains a")


def test_trait_name_of_255_characters_is_accepted() -> None:
    text = MINIMAL + f"traits:\n  - {{sid: 1, name: {'x' * 255}, data_source: 21, type: onboarded}}\n"
    assert len(load_taxonomy(text)[0].traits[0].name) == 255


@pytest.mark.parametrize("ttl", [0, 1, 36_500])
def test_ttl_range_bounds_are_accepted(ttl: int) -> None:
    text = MINIMAL + f"traits:\n  - {{sid: 1, name: t, data_source: 21, type: onboarded, ttl_days: {ttl}}}\n"
    assert load_taxonomy(text)[0].traits[0].ttl_days == ttl


@pytest.mark.parametrize("dpid", [1, 2**31 - 1])
def test_dpid_range_bounds_are_accepted(dpid: int) -> None:
    text = f"data_sources:\n  - {{dpid: {dpid}, owner: 7, name: x, id_type: cookie, inbound_id_type: customer_id}}\n"
    assert load_taxonomy(text)[0].data_sources[0].dpid == dpid


def test_one_bad_item_does_not_hide_the_problems_of_others() -> None:
    text = """\
traits:
  - {sid: x, name: a, data_source: 21, type: onboarded}
  - {sid: 2, name: b, data_source: 21, type: rule_based}
  - {sid: 2, name: c, data_source: 21, type: onboarded}
"""
    assert [p.split(":")[0] for p in problems_of(text)] == ["traits[0].sid", "traits[1].rule", "traits[2].sid"]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("partners:\n  - pid: 7\n    name: acme\n   contacts: [ops@acme.example]\n", 4),
        ("partners:\n  - pid: 7\n    name: 'acme\n", 4),
        ("traits:\n  - {sid: 1, name: [x}\n", 2),
    ],
)
def test_yaml_syntax_error_is_located_by_line(text: str, line: int) -> None:
    # The wording comes from the YAML library; the location and the hint are ours.
    (problem,) = problems_of(text)
    assert re.fullmatch(
        rf"line {line}: YAML syntax: .+ at column \d+ — check indentation and quote values that contain .+", problem
    )


def test_duplicate_yaml_keys_are_problems_not_silent_overrides() -> None:
    text = MINIMAL + "traits:\n  - sid: 1\n    name: a\n    name: b\n    data_source: 21\n    type: onboarded\n"
    assert problems_of(text) == [
        "line 8: duplicate key 'name' in one mapping — give each key once; the second would silently replace the first"
    ]


def test_rule_syntax_error_is_located_at_the_rule_with_column() -> None:
    text = MINIMAL + "traits:\n" + "".join(
        f"  - {{sid: {n}, name: t{n}, data_source: 21, type: onboarded, rule: '{rule}'}}\n"
        for n, rule in enumerate(['ic == "1"', 'gender == "f"', 'a == "1"', '(a == "1"))'], start=1)
    )
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(text)
    (problem,) = info.value.problems
    assert problem.path == "traits[3].rule"
    assert re.search(r" at column \d+$", problem.message)


def test_rule_syntax_is_checked_even_when_other_fields_are_invalid() -> None:
    text = "traits:\n  - {sid: 0, name: t, data_source: 21, type: onboarded, rule: 'a == '}\n"
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(text)
    assert [p.path for p in info.value.problems] == ["traits[0].sid", "traits[0].rule"]


def test_segment_expression_syntax_error_is_located() -> None:
    text = "segments:\n  - {sid: 1, name: s, owner: 7, expression: '101T AND'}\n"
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(text)
    (problem,) = info.value.problems
    assert problem.path == "segments[0].expression"
    assert re.search(r" at column \d+$", problem.message)


def test_taxonomy_error_message_counts_problems() -> None:
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy((INVALID / "traits.yaml").read_text(encoding="utf-8"))
    assert str(info.value).startswith(f"{len(info.value.problems)} problem(s)")


def test_demo_taxonomy_loads_without_warnings() -> None:
    taxonomy, warnings = load_taxonomy(demo_taxonomy_text())
    assert warnings == []
    rules = {t.rule for t in taxonomy.traits}
    for rule in [
        'ic == "1"',
        'gender == "f"',
        '(c_make=="A") AND (c_model=="B")',
        "price >= 1.00 AND price <= 100.00",
        'product contains "tab"',
        'c_url matchesregex ".*sports.*"',
        None,
    ]:
        assert rule in rules
    assert {t.type for t in taxonomy.traits} == {"onboarded", "rule_based"}
    assert any(t.data_source == 31 and t.type == "onboarded" for t in taxonomy.traits)
    assert [(m.pid, m.dpid) for m in taxonomy.access_mappings] == [(8, 21)]
