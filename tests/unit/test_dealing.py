"""Dealing lines into chunks while they are read (engine.chunks.line_chunks).

Every rule that spans lines is per profile, so lines of one user ID must land in one chunk;
the chunks should also be about equally full.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from onramp.engine import chunks

ids = st.binary(max_size=60).map(lambda b: b.replace(b"\t", b""))
rests = st.binary(max_size=40)


def test_extension_is_built():
    assert chunks.first_field_chunks is not None, "reinstall with `pip install -e .` (a C compiler is needed)"


@given(st.lists(st.tuples(ids, rests), min_size=1, max_size=30), st.integers(2, 40))
def test_lines_of_one_user_id_share_a_chunk(lines, n):
    raw = [uid + b"\t" + rest for uid, rest in lines] + [uid + b"\t" for uid, _ in lines]
    dealt = chunks.line_chunks(pa.array(raw, pa.binary()), n).to_pylist()
    by_id: dict[bytes, set[int]] = {}
    for (uid, _), k in zip(lines + lines, dealt):
        by_id.setdefault(uid, set()).add(k)
    assert all(len(ks) == 1 for ks in by_id.values())
    assert all(0 <= k < n for k in dealt)


def test_a_line_without_tab_is_dealt_by_all_its_bytes_and_slices_work():
    line = pa.array([b"x", b"abc", b"abc\tq", b"", b"abc"], pa.binary())
    dealt = chunks.line_chunks(line.slice(1), 7).to_pylist()
    assert dealt[0] == dealt[1] == dealt[3]  # "abc", "abc<TAB>q" and "abc" again


def test_chunks_fill_evenly():
    raw = [f"{i:038d}\td_sid=1".encode() for i in range(8000)]
    counts = Counter(chunks.line_chunks(pa.array(raw, pa.binary()), 8).to_pylist())
    assert sorted(counts) == list(range(8))
    assert all(800 <= c <= 1200 for c in counts.values())
