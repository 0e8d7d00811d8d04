"""The native merge of simple profiles (engine/simple_profiles.py), on lines in memory.

Which profiles are simple, what each line counts and what each profile adds. Whole jobs
through both this and the SQL plan are compared in tests/property/test_simple_line_path.py.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from onramp.engine import simple_profiles

LO = 100
# status by sid - LO: 100 valid, 101 valid, 102 failed validation, 103 unknown
STATUS = np.array([1, 1, 2, 0], dtype=np.uint8)
A, B, C = (f"{i:038d}" for i in (7, 8, 9))


def _merge(*lines: str | bytes, cap: int = 200, too_long: set[int] = frozenset(), control: set[int] = frozenset(),
           line_nos: list[int] | None = None):
    raw = [x.encode() if isinstance(x, str) else x for x in lines]
    n = len(raw)
    table = pa.table({
        "file_idx": pa.array([0] * n, pa.int32()), "line_no": pa.array(line_nos or range(1, n + 1), pa.int64()),
        "line": pa.array(raw, pa.binary()),
        "too_long": pa.array([i in too_long for i in range(n)]), "control": pa.array([i in control for i in range(n)]),
    })
    return simple_profiles.merge_chunk(table, STATUS, LO, cap)


def _adds(merged) -> dict[str, list[int]]:
    return {row["pid"]: sorted(row["sids"]) for row in merged.add_lists.to_pylist()}


def test_extension_is_built():
    assert simple_profiles.available(), "reinstall with `pip install -e .` (a C compiler is needed)"


def test_profiles_merge_distinct_valid_traits_across_lines():
    m = _merge(f"{A}\td_sid=100,d_sid=100, d_sid=102", f"{B}\td_sid=101", f"{A}\td_sid=0101,  d_sid=103   ")
    assert m.simple.tolist() == [True, True, True]
    assert _adds(m) == {A: [100, 101], B: [101]}
    assert m.counters == {
        "records_received": 3, "records_processed": 3, "stored_records": 3, "total_signals": 6, "total_unused_signals": 2,
        "total_realized_traits": 3, "total_traits_failed_validation": 1, "total_users_with_failed_validation": 1,
    }
    assert m.devices == 2 and m.stored_lines == {0: 3} and m.no_trait.num_rows == 0


def test_lines_without_a_valid_trait_are_no_trait_rows():
    m = _merge(f"{A}\td_sid=102,d_sid=103", f"{B}\td_sid=103", f"{B}\td_sid=100")
    assert _adds(m) == {B: [100]}
    rows = m.no_trait.to_pylist()
    assert [(r["line_no"], r["code"], r["pid"], r["n_items"], r["n_unused"], r["n_failed"]) for r in rows] == [
        (1, "no_trait", A, 2, 2, 1), (2, "no_trait", B, 1, 1, 0)]
    assert m.counters["stored_records"] == 1 and m.devices == 1


@pytest.mark.parametrize("other", [
    "d_sid=100 ,d_sid=101",  # a space before a comma
    "D_SID=100",  # upper-case key
    "d_sid=1234567890",  # ten digits
    "d_sid=100,",  # an empty item
    "",  # no items
    "color=red",  # a signal
    "d_sid=100\textra",  # a second TAB
    "d_sid=\"100\"",  # quoted value
    "d_sid=100\u00e9",  # not ASCII
])
def test_any_other_line_sends_the_whole_profile_to_sql(other):
    m = _merge(f"{A}\td_sid=100", f"{A}\t{other}", f"{B}\td_sid=101")
    assert m.simple.tolist() == [False, False, True]
    assert _adds(m) == {B: [101]}


def test_profiles_with_a_removal_replay_their_operations_in_order():
    m = _merge(f"{A}\td_sid=100,d_unsid=100,d_sid=101", f"{B}\td_unsid=103", f"{A}\td_unsid=101, d_unsid=102,d_sid=100",
               f"{C}\td_unsid=101")
    assert m.simple.tolist() == [True] * 4
    assert m.add_lists.num_rows == 0
    assert sorted(m.adds.to_pylist(), key=str) == [{"ns": 0, "pid": A, "sid": 100}]
    assert sorted((r["pid"], r["sid"], r["op"]) for r in m.removes.to_pylist()) == [(A, 100, "add"), (A, 101, "remove"), (C, 101, "remove")]
    assert [(r["pid"], r["sid"]) for r in m.first_removes.to_pylist()] == [(C, 101)]
    assert m.removed_after_add == 2  # 100 on line 1, 101 on line 3
    # line 2 realizes and removes nothing (103 is unknown): No trait realized
    assert [(r["line_no"], r["pid"], r["n_items"], r["n_unused"]) for r in m.no_trait.to_pylist()] == [(2, B, 1, 1)]
    assert m.counters["stored_records"] == 3 and m.counters["total_realized_traits"] == 3
    assert m.counters["total_traits_failed_validation"] == 1 and m.devices == 2


def test_operations_replay_in_file_order_not_row_order():
    # A chunk's rows come from several Parquet writers: line 2 may be read before line 1.
    m = _merge(f"{A}\td_unsid=100", f"{A}\td_sid=100", line_nos=[2, 1])
    assert [(r["sid"], r["op"]) for r in m.removes.to_pylist()] == [(100, "remove")]
    assert m.adds.num_rows == 0 and m.first_removes.num_rows == 0 and m.removed_after_add == 1


def test_too_long_and_control_lines_taint_their_profile():
    m = _merge(f"{A}\td_sid=100", f"{A}\td_sid=101", f"{B}\td_sid=100", too_long={1}, control={2})
    assert m.simple.tolist() == [False, False, False]
    assert _adds(m) == {}


def test_lines_of_other_ids_are_left_alone():
    m = _merge("123\td_sid=100", f"{A[:-1]}x\td_sid=100", f"{A}\td_sid=100", f"{A}", f"{A} \td_sid=100")
    # the last two start with A but have no TAB right after it: not lines of profile A
    assert m.simple.tolist() == [False, False, True, False, False]
    assert _adds(m) == {A: [100]}


def test_profiles_over_the_cap_take_sql():
    m = _merge(*[f"{A}\td_sid=100"] * 3, *[f"{B}\td_sid=101"] * 2, cap=2)
    assert m.simple.tolist() == [False] * 3 + [True] * 2
    assert _adds(m) == {B: [101]}


def test_empty_chunk():
    m = _merge()
    assert m.simple.tolist() == [] and m.add_lists.num_rows == 0 and m.counters["records_received"] == 0
