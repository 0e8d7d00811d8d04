"""A job's big intermediate rows, kept outside its transaction as Parquet files (ADR 0004).

Rows written to a table inside the job's one transaction stay in memory that DuckDB's
memory limit cannot spill, so whatever grows with the file (spooled lines, staged profile
changes, reject rows) is written as Parquet pieces and read back through temp views.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from onramp.engine.sqltext import lit

Columns = Sequence[tuple[str, str]]  # (name, DuckDB type)

# Scratch Parquet is written once and read once or twice, on the same machine: no
# compression, and no dictionary pages (its strings are mostly distinct user IDs and lines,
# and building a dictionary that is then abandoned cost 0.9 s of 7.4 s when spooling 10M lines).
SCRATCH_PARQUET = "FORMAT parquet, COMPRESSION uncompressed, DICTIONARY_SIZE_LIMIT 1"

RAW_LINE_COLUMNS: Columns = (("file_idx", "INTEGER"), ("line_no", "BIGINT"), ("line", "BLOB"), ("too_long", "BOOLEAN"), ("control", "BOOLEAN"))


def raw_line_names(alias: str = "") -> str:
    """The raw-line columns as a select list (``r.file_idx, r.line_no, …`` with ``alias='r'``)."""
    return ", ".join(f"{alias}.{name}" if alias else name for name, _ in RAW_LINE_COLUMNS)


def parquet_source(files: Sequence[Path], columns: Columns) -> str:
    """A FROM item reading ``files``; with none, an empty relation of ``columns``."""
    if files:
        return f"read_parquet([{', '.join(lit(str(f)) for f in files)}])"
    nulls = ", ".join(f"NULL::{kind} AS {name}" for name, kind in columns)
    return f"(SELECT {nulls} WHERE false)"


def drop_quietly(con: duckdb.DuckDBPyConnection, kind: str, name: str) -> None:
    """``DROP kind IF EXISTS name`` during cleanup, which must not hide the first error."""
    try:
        con.execute(f"DROP {kind} IF EXISTS {name}")
    except duckdb.Error:
        pass  # the transaction failed; the caller rolls back and reports the first error


class ParquetPieces:
    """Rows of one relation appended as Parquet pieces under ``directory``; the temp view
    ``name`` reads them all (after ``expose``).

    Pieces may be written from one connection and read from another (the job's chunk
    work runs outside its transaction, service/ingest.py): ``append`` and ``expose`` take
    the connection to use, by default the one given here."""

    def __init__(self, con: duckdb.DuckDBPyConnection, directory: Path, name: str, columns: Columns):
        self.con, self.dir, self.name, self.columns = con, Path(directory), name, tuple(columns)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []

    def append(self, query: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Write the rows of ``query``, cast to this relation's columns, as one more piece."""
        path = self.dir / f"{self.name}.{len(self.files) + 1}.parquet"
        cast = ", ".join(f"{name}::{kind} AS {name}" for name, kind in self.columns)
        (con or self.con).execute(f"COPY (SELECT {cast} FROM ({query})) TO {lit(str(path))} ({SCRATCH_PARQUET})")
        self.files.append(path)

    def expose(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        (con or self.con).execute(f"CREATE OR REPLACE TEMP VIEW {self.name} AS SELECT * FROM {parquet_source(self.files, self.columns)}")
