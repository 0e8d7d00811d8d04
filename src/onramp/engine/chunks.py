"""Cutting a big logical file into chunks that fit in memory (DESIGN §5: stream, spill).

Every rule of SPEC §3.6–§3.8 that spans lines is per profile: the 200-lines cap counts
lines per user ID, `.sync` applies operations per (profile, trait) in line order and
`.overwrite` replaces per profile. So lines are dealt into chunks by a hash of the
profile they will land on — the user ID itself, or for device-level files the device
the ID resolves to — and each chunk runs the whole plan on its own, with the same
result as one pass over the file. Only the ODC rule "every row has the type of the
file's first valid row" looks across profiles; that type is found before chunking.

Input: ``raw_all(file_idx, line_no, line, too_long, uid_hash)`` (a view over the spooled parts). Each chunk is exposed
as ``raw_lines``, the table the plan reads.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from onramp.engine.arrow_bytes import binary_parts
from onramp.engine.data_plan import ID_DEVICE_LEVEL, DataPlan, first_odc_ns, split_lines
from onramp.engine.resolve import resolve_ids
from onramp.engine.scratch import RAW_LINE_COLUMNS, SCRATCH_PARQUET, drop_quietly, parquet_source, raw_line_names
from onramp.engine.sqltext import lit

try:
    from onramp.engine._dealing import first_field_chunks
except ImportError:  # pragma: no cover - every supported install builds the extension
    first_field_chunks = None

_COLS = raw_line_names()
# Rows looked at to find an ODC file's first valid row before falling back to all rows.
_ODC_PROBE_ROWS = 100_000


def uid_sql(odc: bool, line: str = "line") -> str:
    """The user ID field of raw line column ``line`` (NULL when it is not UTF-8)."""
    return f"split_part(try(decode({line})), chr(9), {2 if odc else 1})"


def uid_hash_sql(odc: bool) -> str:
    """Column ``uid_hash`` of ``raw_all``: which chunk a line goes to."""
    return f"coalesce(hash({uid_sql(odc)}), 0)"


def deals_while_reading(odc: bool, chunks: int) -> bool:
    """Whether ``line_chunks`` deals a file's lines as they are read (instead of DuckDB
    computing ``uid_hash`` per line): the user ID is the first field, and there is a choice."""
    return first_field_chunks is not None and not odc and chunks > 1


def line_chunks(line: pa.Array, chunks: int) -> pa.Array:
    """Each line's chunk by a hash of its bytes before the first TAB: lines of one user ID
    share a chunk (lines without a valid ID belong to no profile, any chunk serves them)."""
    data, offsets = binary_parts(line)
    return pa.array(first_field_chunks(data, offsets[:-1], offsets[1:], chunks))


def chunk_count(con: duckdb.DuckDBPyConnection, chunk_lines: int, raw_bytes: int = 0, chunk_bytes: int = 0) -> int:
    """Enough chunks that none holds more than ``chunk_lines`` lines or ``chunk_bytes`` bytes
    (on average; lines are dealt by a hash of their profile)."""
    n = con.execute("SELECT count(*) FROM raw_all").fetchone()[0]
    return max(-(-n // max(1, chunk_lines)), chunks_for_bytes(raw_bytes, chunk_bytes))


def chunks_for_bytes(raw_bytes: int, chunk_bytes: int) -> int:
    """Chunks needed for ``raw_bytes`` of lines at ``chunk_bytes`` each (at least one)."""
    return max(1, -(-raw_bytes // chunk_bytes)) if chunk_bytes > 0 else 1


def prepare(con: duckdb.DuckDBPyConnection, plan: DataPlan, chunks: int) -> DataPlan:
    """Decide each line's chunk (temp table ``line_chunk``) and fix cross-chunk facts in ``plan``."""
    uid = uid_sql(plan.odc)
    if plan.odc and plan.odc_ns is None:
        plan = _with_odc_ns(con, plan)
    if plan.id_kind == ID_DEVICE_LEVEL and not plan.odc:
        # Lines of different IDs that resolve to one device must share a chunk (D-34 order).
        con.execute(f"CREATE OR REPLACE TEMP TABLE chunk_ids AS SELECT DISTINCT {uid} AS uid FROM raw_all")
        resolve_ids(con, source="chunk_ids", dpid=plan.file_dpid, env=plan.env, now=plan.now,
                    link_ttl_days=plan.link_ttl_days, max_hops=plan.max_hops)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE uid_chunk AS
            SELECT c.uid, hash(coalesce(r.ns::VARCHAR || ':' || r.pid, c.uid)) % {chunks} AS chunk
              FROM chunk_ids c LEFT JOIN (SELECT uid, any_value(ns) AS ns, any_value(pid) AS pid FROM resolved GROUP BY uid) r
                ON r.uid = c.uid"""
        )
    return plan


def chunk_views(con: duckdb.DuckDBPyConnection, plan: DataPlan, chunks: int, scratch: Path,
                dealt: Callable[[int], list[Path]] | None = None) -> Iterator[int]:
    """Expose each chunk in turn as the temp view ``raw_lines``; yields the chunk number.

    ``dealt(k)``: the Parquet files of chunk ``k`` when the lines were already dealt into
    ``chunks`` chunks by ``uid_hash`` while spooling (never for device-level files).

    With more than one chunk, ``raw_all`` is written once to Parquet files partitioned by
    chunk under ``scratch``, so each chunk reads only its own lines: filtering ``raw_all``
    per chunk would read the whole file once per chunk.
    """
    by_device = plan.id_kind == ID_DEVICE_LEVEL and not plan.odc
    con.execute("DROP TABLE IF EXISTS raw_lines")  # left by an ID-sync file earlier in the job
    if chunks == 1:
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw_lines AS SELECT {_COLS} FROM raw_all")
        try:
            yield 0
        finally:
            drop_quietly(con, "VIEW", "raw_lines")
        return
    if dealt is not None and not by_device:
        try:
            for k in range(chunks):
                _expose_chunk(con, dealt(k))
                yield k
        finally:
            drop_quietly(con, "VIEW", "raw_lines")
        return
    if by_device:
        body = f"""SELECT {raw_line_names("r")}, u.chunk FROM raw_all r
                    JOIN uid_chunk u ON u.uid IS NOT DISTINCT FROM {uid_sql(plan.odc, "r.line")}"""
    else:
        body = f"SELECT {_COLS}, uid_hash % {chunks} AS chunk FROM raw_all"
    scratch.mkdir(parents=True, exist_ok=True)
    parts = scratch / f"chunks-{uuid.uuid4().hex}"
    try:
        con.execute(f"COPY ({body}) TO {lit(str(parts))} ({SCRATCH_PARQUET}, PARTITION_BY (chunk))")
        for k in range(chunks):
            _expose_chunk(con, sorted((parts / f"chunk={k}").glob("*.parquet")))  # none: no line hashed to this chunk
            yield k
    finally:
        drop_quietly(con, "VIEW", "raw_lines")
        shutil.rmtree(parts, ignore_errors=True)


def _expose_chunk(con: duckdb.DuckDBPyConnection, files: list[Path]) -> None:
    # A view: the plan reads a chunk's lines once (and the reject rows once more, only
    # where a line was not stored); uncompressed Parquet reads cheaper than a copy.
    con.execute(f"CREATE OR REPLACE TEMP VIEW raw_lines AS SELECT {_COLS} FROM {parquet_source(files, RAW_LINE_COLUMNS)}")


def _with_odc_ns(con: duckdb.DuckDBPyConnection, plan: DataPlan) -> DataPlan:
    from dataclasses import replace

    con.execute("DROP TABLE IF EXISTS raw_lines")
    for limit in (f"LIMIT {_ODC_PROBE_ROWS}", ""):
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW raw_lines AS
                SELECT {_COLS} FROM raw_all ORDER BY file_idx, line_no {limit}"""
        )
        split_lines(con, plan)
        ns = first_odc_ns(con)
        if ns != -1 or not limit:
            con.execute("DROP VIEW raw_lines")
            return replace(plan, odc_ns=ns)
    raise AssertionError("unreachable")
