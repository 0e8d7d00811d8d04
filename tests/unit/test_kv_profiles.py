"""The native merge of simple key-value profiles (engine/kv_profiles.py, ADR 0008), line by line.

The property test ``tests/property/test_native_kv.py`` compares whole jobs with the SQL
plan; these pin down the rule semantics (§4.4), the used signals (§4.6) and what makes a
profile not simple.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from onramp.engine import kv_profiles
from onramp.engine._kv_profiles import _canonical_decimal, _number_sort_key
from onramp.engine.rulebook import build_rulebook
from onramp.rules.values import canonical_decimal, is_number, number_sort_key

RULES = {
    1: 'color == "red"',
    2: "size == 10",
    3: 'ic == "123"',
    4: "price >= 10 AND price <= 50.5",
    5: 'url contains "sport"',
    6: 'url startswith "www"',
    7: 'page endswith ".html"',
    8: 'tier != "gold"',
    9: 'make == "vw" AND model == "golf"',
    10: 'color == "blue" OR shade == "navy"',
    11: 'color == "green" OR url contains "news"',
    12: 'bio matchesregex ".*x.*"',
}
PLAIN = 20  # an onboarded trait without a rule (for d_sid items)
FOREIGN = 30  # a trait of another data source (failed validation)


@pytest.fixture(scope="module")
def rules():
    con = duckdb.connect()
    con.execute("CREATE TABLE traits (sid INTEGER, data_source INTEGER, type VARCHAR, rule VARCHAR)")
    con.executemany("INSERT INTO traits VALUES (?, 22, 'onboarded', ?)", [(sid, rule) for sid, rule in RULES.items()])
    con.execute(f"INSERT INTO traits VALUES ({PLAIN}, 22, 'onboarded', NULL), ({FOREIGN}, 55, 'onboarded', NULL)")
    status = np.zeros(FOREIGN, dtype=np.uint8)  # sids 1..30, lo = 1
    status[[sid - 1 for sid in (*RULES, PLAIN)]] = 1
    status[FOREIGN - 1] = 2
    compiled = kv_profiles.compile_rules(build_rulebook(con, 22), status, 1)
    assert compiled is not None
    return compiled


def _merge(rules, lines: list[str], cap: int = 200):
    raw = [line.encode() for line in lines]
    table = pa.table({
        "file_idx": pa.array([0] * len(raw), pa.int32()), "line_no": pa.array(range(1, len(raw) + 1), pa.int64()),
        "line": pa.array(raw, pa.binary()), "too_long": [False] * len(raw), "control": [False] * len(raw),
    })
    return kv_profiles.merge_chunk(table, rules, kv_profiles.KIND_CUSTOMER_ID, 22, cap, False)


def _traits(rules, items: str) -> list[int]:
    merged = _merge(rules, [f"u1\t{items}"])
    assert merged.simple.all(), items
    lists = merged.add_lists.to_pylist()
    return sorted(lists[0]["sids"]) if lists else []


@pytest.mark.parametrize("items", ['color=red', '"color"=red', 'color="red"', '"color"="red"', " COLOR = Red ",
                                   "-color=RED", '"-Color"=red', "x=1,,color=red,"])
def test_quoting_case_and_dashes(rules, items):
    assert _traits(rules, items) == [1]


@pytest.mark.parametrize(("items", "expected"), [
    ("size=10", [2]), ("size=10.0", [2]), ("size=010", [2]), ("size=10.01", []), ('size="10"', [2]), ("size=ten", []),
    ("123", [3]), ("ic=123", [3]), ("0123", []), ("IC=123", [3]),
    ("price=10", [4]), ("price=50.50", [4]), ("price=50.51", []), ("price=9.999", []), ("price=abc", []),
    ("price=5,price=20", [4]), ("price=-20", []),
    ("url=www.a.com/Sports", [5, 6]), ("url=a.com/sport", [5]), ("page=/a/B.HTML", [7]),
    ("tier=silver", [8]), ("tier=gold,tier=silver", []), ("tier=GOLD", []), ("x=1", []),
    ("make=vw,model=golf", [9]), ("make=vw", []), ("model=Golf,make=VW", [9]),
    ("shade=navy", [10]), ("color=blue,shade=navy", [10]), ("url=news.com", [11]), ("color=green", [11]),
    (f"d_sid={PLAIN},color=red", [1, PLAIN]), (f"d_sid={PLAIN},d_sid={PLAIN}", [PLAIN]), (f'"d_sid"="{PLAIN}"', [PLAIN]),
])
def test_rule_semantics(rules, items, expected):
    assert _traits(rules, items) == expected


def test_counters_and_used_signals(rules):
    # color is used (trait 1 realized); other_key and 999 are not; trait 30 fails validation.
    merged = _merge(rules, [f"u1\tcolor=red,other_key=1,999,d_sid={FOREIGN}", "u2\tnothing=here", "u3\tcolor=red"])
    assert merged.simple.tolist() == [True, True, True]
    c = merged.counters
    assert (c["stored_records"], c["total_signals"], c["total_unused_signals"], c["total_realized_traits"]) == (2, 5, 3, 2)
    assert (c["total_traits_failed_validation"], c["total_users_with_failed_validation"]) == (1, 1)
    assert merged.no_trait.select(["line_no", "pid", "n_items", "n_unused"]).to_pylist() == [
        {"line_no": 2, "pid": "u2", "n_items": 1, "n_unused": 1}]


def test_profiles_merge_their_lines(rules):
    merged = _merge(rules, ["u1\tcolor=red", "u2\tsize=10", "u1\tsize=10,color=red", "u1\tmake=vw", "u1\tmodel=golf"])
    assert merged.simple.all()
    assert {r["pid"]: sorted(r["sids"]) for r in merged.add_lists.to_pylist()} == {"u1": [1, 2], "u2": [2]}


@pytest.mark.parametrize("line", [
    "u1\td_unsid=1", "u1\t1:0", "u1\tcolor=", "u1\t=red", 'u1\t""=x', "u1\tbare", 'u1\t"unbalanced=1', "u1\ta=b=c",
    'u1\tcolor="red"x', "u1\tcity=Zürich", "u1\tcolor=red\tx", "u1\t,,", "u1\t", "u1\tbio=x", "u1\td_sid=1234567890",
])
def test_profile_with_a_line_that_is_not_simple(rules, line):
    merged = _merge(rules, ["u1\tcolor=red", line, "u2\tcolor=red"])
    assert merged.simple.tolist() == [False, False, True]
    assert [r["pid"] for r in merged.add_lists.to_pylist()] == ["u2"]


@pytest.mark.parametrize("uid", ["a:b", "a%3Ab", "x@y.com", "é", "x" * 1025, ""])
def test_user_ids_the_plan_decides(rules, uid):
    assert not _merge(rules, [f"{uid}\tcolor=red"]).simple.any()


def test_cap(rules):
    assert not _merge(rules, ["u1\tcolor=red"] * 3, cap=2).simple.any()
    assert _merge(rules, ["u1\tcolor=red"] * 2, cap=2).simple.all()


def test_a_rule_true_without_its_keys_keeps_the_plan():
    con = duckdb.connect()
    con.execute("CREATE TABLE traits (sid INTEGER, data_source INTEGER, type VARCHAR, rule VARCHAR)")
    con.execute("INSERT INTO traits VALUES (1, 22, 'onboarded', 'NOT tier == \"gold\"')")
    assert kv_profiles.compile_rules(build_rulebook(con, 22), np.ones(1, np.uint8), 1) is None


numbers = st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{1,8})?", fullmatch=True)


@given(text=numbers | st.text(alphabet="-.0123456789a ", max_size=8))
def test_number_forms_match_python(text):
    raw = text.encode()
    if not is_number(text):
        assert _canonical_decimal(raw) is None and _number_sort_key(raw) is None
        return
    assert _canonical_decimal(raw).decode() == canonical_decimal(text)
    assert _number_sort_key(raw).decode() == number_sort_key(text)
