"""Simple profiles merged natively (ADR 0007), so that most of a d_sid file skips the SQL plan.

For a `.sync` file of platform UUIDs, a profile whose lines in a chunk are all simple
(``_simple_profiles.pyx``) needs no identity resolution and no rule: its result follows
from its ``d_sid``/``d_unsid`` items alone. The native pass finds those profiles, merges
them in one pass over the chunk's bytes and returns:

- the final adds of those without a removal, one row per profile (``add_lists``: ``ns, pid,
  sids``), staged like the SQL plan's ``direct_add_lists``;
- for those with a removal, the rows the SQL plan stages after ordering their operations
  (``adds``, ``removes``, ``first_removes`` and the count of removals right after an add,
  ``engine.apply.ProfileChanges``);
- the receipt counters of their stored lines, and their Total devices;
- their lines that store nothing (``no_trait``), as ``line_result`` rows, so that the
  receipt and the reject file treat them like any other line.

Every other line, with all lines of the other profiles, takes the SQL plan. The property
test ``tests/property/test_simple_line_path.py`` runs random files both ways.

The extension is built when the package is installed (setup.py). Without it ``available()``
is false and every line takes the SQL plan, with the same results.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from onramp.engine.arrow_bytes import binary_parts

try:
    from onramp.engine._simple_profiles import _id_bytes, merge_simple_profiles
except ImportError:  # pragma: no cover - every supported install builds the extension
    merge_simple_profiles = None

UUID_BYTES = 38
PLATFORM_NS = 0  # profiles of platform UUIDs (SPEC §1.8)
OP_ADD = 1  # the final operation of a trait, as the extension reports it (2: a removal)
ADD_LIST_SCHEMA = pa.schema([("ns", pa.int32()), ("pid", pa.string()), ("sids", pa.list_(pa.int32()))])
NO_TRAIT_SCHEMA = pa.schema([
    ("file_idx", pa.int32()), ("line_no", pa.int64()), ("code", pa.string()), ("ns", pa.int32()), ("pid", pa.string()),
    ("n_items", pa.int64()), ("n_unused", pa.int64()), ("n_realized", pa.int64()), ("n_failed", pa.int64()),
])


def available() -> bool:
    return merge_simple_profiles is not None


KEY_SCHEMA = pa.schema([("ns", pa.int32()), ("pid", pa.string()), ("sid", pa.int32())])
REMOVE_SCHEMA = pa.schema([*KEY_SCHEMA, ("op", pa.string())])


@dataclass
class ChunkMerge:
    simple: np.ndarray  # per line of the chunk: it belongs to a simple profile
    add_lists: pa.Table  # ADD_LIST_SCHEMA
    adds: pa.Table  # KEY_SCHEMA: final adds of profiles with a removal
    removes: pa.Table  # REMOVE_SCHEMA: final operation of their traits that had a removal
    first_removes: pa.Table  # KEY_SCHEMA: their traits whose first operation was a removal
    removed_after_add: int
    no_trait: pa.Table  # NO_TRAIT_SCHEMA
    counters: dict[str, int]  # receipt counters of the simple profiles' stored lines
    stored_lines: Counter  # file_idx -> stored lines (non-blank lines of the part)
    devices: int  # simple profiles with a stored line (§6.2 Total devices)


def merge_chunk(lines: pa.Table, status: np.ndarray, lo: int, cap: int) -> ChunkMerge:
    """Merge the simple profiles of one chunk. ``lines``: the chunk's raw lines
    (``file_idx, line_no, line, too_long, control``); ``status``/``lo``: the trait lookup
    list (``data_plan.trait_status``); ``cap``: lines per user (§3.6)."""
    data, offsets = binary_parts(lines.column("line").combine_chunks())
    skip = (lines.column("too_long").to_numpy(zero_copy_only=False) | lines.column("control").to_numpy(zero_copy_only=False))
    file_idx = lines.column("file_idx").to_numpy()
    seq = (file_idx.astype(np.int64) << 40) | lines.column("line_no").to_numpy().astype(np.int64)  # file order of the lines
    m = merge_simple_profiles(data, offsets[:-1], offsets[1:], skip.astype(np.uint8), seq,
                              np.ascontiguousarray(status, dtype=np.uint8), int(lo), int(cap))
    simple = m["simple"]
    items, used, failed, realized = m["items"].astype(np.int64), m["used"], m["failed"], m["realized"]
    stores = (realized + m["removals"]) > 0  # §3.7: a line that changes its profile is Stored
    stored = simple & stores
    counters, stored_lines = stored_counters(stored, file_idx, items, used, failed, realized)
    pids = _id_array(m["ids"])
    add_lists = pa.Table.from_arrays(
        [pa.array(np.full(len(pids), PLATFORM_NS, dtype=np.int32)), pids, pa.ListArray.from_arrays(pa.array(m["offsets"].astype(np.int32)), pa.array(m["sids"]))],
        schema=ADD_LIST_SCHEMA,
    )
    empty = np.flatnonzero(simple & ~stores)
    no_trait = no_trait_rows(lines, empty, PLATFORM_NS, _id_array(_id_bytes(data, offsets[:-1], empty)), items, used, failed)
    op_pids, op_sids, last = _id_array(m["op_ids"]), pa.array(m["op_sids"]), m["op_last"]
    return ChunkMerge(
        simple=simple, add_lists=add_lists,
        adds=_keys(op_pids, op_sids, last == OP_ADD),
        removes=_keys(op_pids, op_sids, m["op_removal"]).append_column(
            "op", pa.array(np.where(last[m["op_removal"]] == OP_ADD, "add", "remove").astype(object), pa.string())),
        first_removes=_keys(op_pids, op_sids, m["op_first_removal"]),
        removed_after_add=m["removed_after_add"], no_trait=no_trait, counters=counters, stored_lines=stored_lines,
        devices=m["devices"])


def stored_counters(stored: np.ndarray, file_idx: np.ndarray, items: np.ndarray, used: np.ndarray, failed: np.ndarray,
                    realized: np.ndarray) -> tuple[dict[str, int], Counter]:
    """The receipt counters of a native pass's ``stored`` lines (per-line arrays), and the
    stored lines per part."""
    counters = {
        "records_received": int(stored.sum()),
        "records_processed": int(stored.sum()),
        "stored_records": int(stored.sum()),
        "total_signals": int(items[stored].sum()),
        "total_unused_signals": int((items - used)[stored].sum()),
        "total_realized_traits": int(realized[stored].sum()),
        "total_traits_failed_validation": int(failed[stored].sum()),
        "total_users_with_failed_validation": int((failed[stored] > 0).sum()),
    }
    per_part = np.bincount(file_idx[stored]) if stored.any() else np.zeros(0, np.int64)
    return counters, Counter({idx: int(n) for idx, n in enumerate(per_part) if n})


def no_trait_rows(lines: pa.Table, empty: np.ndarray, ns: int, pids: pa.Array, items: np.ndarray, used: np.ndarray,
                  failed: np.ndarray) -> pa.Table:
    """``NO_TRAIT_SCHEMA`` rows of the lines ``empty`` (their user IDs ``pids``), which store nothing."""
    return pa.Table.from_arrays([
        pa.array(lines.column("file_idx").to_numpy()[empty]), pa.array(lines.column("line_no").to_numpy()[empty]),
        pa.array(np.full(len(empty), "no_trait", dtype=object), pa.string()),
        pa.array(np.full(len(empty), ns, dtype=np.int32)), pids,
        pa.array(items[empty]), pa.array((items - used)[empty]), pa.array(np.zeros(len(empty), np.int64)),
        pa.array(failed[empty].astype(np.int64)),
    ], schema=NO_TRAIT_SCHEMA)


def _keys(pids: pa.Array, sids: pa.Array, mask: np.ndarray) -> pa.Table:
    """``KEY_SCHEMA`` rows of the (pid, sid) pairs selected by ``mask``."""
    picked = pa.array(mask)
    return pa.Table.from_arrays([pa.array(np.full(int(mask.sum()), PLATFORM_NS, dtype=np.int32)), pids.filter(picked),
                                 sids.filter(picked)], schema=KEY_SCHEMA)


LINE_SCHEMA = pa.schema([("file_idx", pa.int32()), ("line_no", pa.int64()), ("line", pa.binary()),
                         ("too_long", pa.bool_()), ("control", pa.bool_())])


class MergeAhead:
    """Reads and merges the next chunks on ``workers`` threads while the caller runs the
    plan on chunk k.

    The pass runs mostly without the GIL, and the caller waits for it more than it works:
    the plan has few lines left, so both cores merge (10M d_sid lines: 33 s of CPU in 29 s
    with one worker)."""

    def __init__(self, chunk_files: Sequence[Sequence[Path]], merge: Callable[[pa.Table], ChunkMerge], workers: int = 2):
        self._files, self._merge, self._ahead = list(chunk_files), merge, workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="onramp-merge")
        self._pending: dict[int, Future] = {}
        for k in range(workers):
            self._submit(k)

    def take(self, k: int) -> tuple[pa.Table, ChunkMerge]:
        """Chunk ``k``'s lines (``LINE_SCHEMA``) and their merge; starts on a later chunk."""
        self._submit(k + self._ahead)
        self._submit(k)
        return self._pending.pop(k).result()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pool.shutdown(wait=True)

    def _submit(self, k: int) -> None:
        if k < len(self._files) and k not in self._pending:
            self._pending[k] = self._pool.submit(self._load_and_merge, self._files[k])

    def _load_and_merge(self, files: Sequence[Path]) -> tuple[pa.Table, ChunkMerge]:
        if files:
            lines = pq.read_table([str(f) for f in files], columns=LINE_SCHEMA.names).cast(LINE_SCHEMA)
        else:  # no line was dealt to this chunk
            lines = LINE_SCHEMA.empty_table()
        return lines, self._merge(lines)


def sql_lines(lines: pa.Table, merged: ChunkMerge) -> pa.Table:
    """The chunk's lines that take the SQL plan."""
    return lines.filter(pa.array(~merged.simple))


def _id_array(chars: np.ndarray) -> pa.Array:
    """A string array of the 38-byte IDs laid end to end in ``chars``."""
    n = len(chars) // UUID_BYTES
    offsets = np.arange(0, (n + 1) * UUID_BYTES, UUID_BYTES, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars))])
