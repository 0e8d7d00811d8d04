"""Applying a taxonomy to the store (SPEC §11.1 ``taxonomy apply``).

Partial and idempotent: entities in the file are created or replaced as declared (an
omitted optional field takes its default), entities not in the file are left alone, and
applying the same file twice changes nothing. All references are checked against the
file and the store first; any problem aborts before a single row changes, and the
writes happen in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from onramp.errors import TaxonomyError
from onramp.taxonomy.models import SECTIONS, Taxonomy
from onramp.formats.timestamps import naive_utc
from onramp.taxonomy.rows import TABLES, Row, entity_row, insert_verb, normalize, params, row_key
from onramp.taxonomy.validate import (
    Known,
    KnownDataSource,
    check_expressions,
    check_file,
    check_references,
    indexed,
    sort_problems,
)

DEFAULT_ERROR_SAMPLING_DAYS = 14  # settings.reports.error_sampling_days (§7.4)


@dataclass(frozen=True)
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class ApplySummary:
    """What an apply did, per section of the file (``partners``, ``data_sources``, ...)."""

    counts: Mapping[str, Counts]

    @property
    def created(self) -> int:
        return sum(c.created for c in self.counts.values())

    @property
    def updated(self) -> int:
        return sum(c.updated for c in self.counts.values())

    @property
    def unchanged(self) -> int:
        return sum(c.unchanged for c in self.counts.values())

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {s: {"created": c.created, "updated": c.updated, "unchanged": c.unchanged} for s, c in self.counts.items()}


def apply_taxonomy(
    con: duckdb.DuckDBPyConnection,
    taxonomy: Taxonomy,
    *,
    now: datetime | None = None,
    error_sampling_days: int = DEFAULT_ERROR_SAMPLING_DAYS,
) -> ApplySummary:
    """Create or update every entity of ``taxonomy`` in one transaction.

    Raises :class:`TaxonomyError` (nothing changed) listing every problem, including
    references that resolve neither in the file nor in the store. ``now`` (UTC) only
    matters for ``error_sampling`` periods.
    """
    now = naive_utc(now or datetime.now(UTC))
    con.execute("BEGIN TRANSACTION")
    try:
        stored = read_rows(con)
        items = indexed(taxonomy)
        problems = check_file(items)[0] + check_expressions(items) + check_references(items, known_from(stored))
        if problems:
            raise TaxonomyError(sort_problems(problems))
        summary = _write(con, taxonomy, stored, now, error_sampling_days)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return summary


def read_rows(con: duckdb.DuckDBPyConnection) -> dict[str, dict[tuple[object, ...], Row]]:
    """Every taxonomy row of the store: section → key → row."""
    rows: dict[str, dict[tuple[object, ...], Row]] = {}
    for section, (table, _, columns) in TABLES.items():
        cursor = con.execute(f"SELECT {', '.join(columns)} FROM {table}")
        records = (normalize(section, dict(zip(columns, values))) for values in cursor.fetchall())
        rows[section] = {row_key(section, r): r for r in records}
    return rows


def known_from(stored: Mapping[str, Mapping[tuple[object, ...], Row]]) -> Known:
    return Known(
        partners={r["pid"]: r["name"] for r in stored["partners"].values()},
        data_sources={
            r["dpid"]: KnownDataSource(r["owner_pid"], r["is_global"], r["integration_code"], r["name"])
            for r in stored["data_sources"].values()
        },
        traits={r["sid"]: r["type"] for r in stored["traits"].values()},
        segments=frozenset(r["sid"] for r in stored["segments"].values()),
    )


def _write(
    con: duckdb.DuckDBPyConnection,
    taxonomy: Taxonomy,
    stored: Mapping[str, Mapping[tuple[object, ...], Row]],
    now: datetime,
    sampling_days: int,
) -> ApplySummary:
    counts: dict[str, Counts] = {}
    for section in SECTIONS:
        changed: list[list[object]] = []
        created = unchanged = 0
        for entity in getattr(taxonomy, section):
            key = tuple(getattr(entity, k) for k in SECTIONS[section][1])
            current = stored[section].get(key)
            row = entity_row(section, entity, current, now, sampling_days)
            if row == current:
                unchanged += 1
                continue
            created += current is None
            changed.append(params(section, row))
        _insert(con, section, changed)
        counts[section] = Counts(created, len(changed) - created, unchanged)
    return ApplySummary(counts)


def _insert(con: duckdb.DuckDBPyConnection, section: str, rows: list[list[object]]) -> None:
    """One set-based INSERT OR REPLACE per table: row-by-row inserts take minutes for the
    100,000 traits an account may hold. REPLACE rather than UPDATE also avoids DuckDB's
    spurious key violations when a primary-key row is updated inside a transaction."""
    if not rows:
        return
    table, _, columns = TABLES[section]
    types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    batch = pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    con.register(_BATCH, batch)
    try:
        select = ", ".join(f"CAST({c} AS {types[c]})" for c in columns)
        con.execute(f"{insert_verb(section)} INTO {table} ({', '.join(columns)}) SELECT {select} FROM {_BATCH}")
    finally:
        con.unregister(_BATCH)


_BATCH = "onramp_taxonomy_batch"
