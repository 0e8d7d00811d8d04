"""The trait catalogue of one data source, compiled for set-based evaluation.

Snapshotted at job start (§3.10). Equality rules (the common case) become rows of
``eq_atoms`` and are matched with a join; every other rule compiles to one SQL
boolean expression over the line's signal list.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from onramp.rules.ast import Rule
    from onramp.rules.compile_pivot import Pivot


@dataclass
class Rulebook:
    owner_dpid: int
    eq_atoms: list[tuple[int, int, int, int, str, str]] = field(default_factory=list)  # sid, term, atom, n_atoms, key, token
    complex_rules: list[int] = field(default_factory=list)  # sids evaluated through the pivot
    complex_asts: list["Rule"] = field(default_factory=list)  # their parsed rules, in the same order
    pivot: "Pivot | None" = None
    empty_true: list[int] = field(default_factory=list)  # complex rules true for a line without their keys
    rule_keys: list[tuple[int, str]] = field(default_factory=list)  # sid, key
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # names this snapshot in temp tables built from it


def build_rulebook(con: duckdb.DuckDBPyConnection, owner_dpid: int) -> Rulebook:
    from onramp.rules.compile_pivot import Pivot
    from onramp.rules.equality import equality_dnf
    from onramp.rules.evaluate import evaluate
    from onramp.rules.parser import parse_trait_rule, rule_keys

    book = Rulebook(owner_dpid, pivot=Pivot())
    rows = con.execute(
        "SELECT sid, rule FROM traits WHERE data_source = ? AND type = 'onboarded' AND rule IS NOT NULL ORDER BY sid",
        [owner_dpid],
    ).fetchall()
    for sid, text in rows:
        rule = parse_trait_rule(text)
        for key in sorted(rule_keys(rule)):
            book.rule_keys.append((sid, key))
        dnf = equality_dnf(rule)
        if dnf is None:
            book.complex_rules.append(sid)
            book.complex_asts.append(rule)
            book.pivot.add_rule(sid, rule)
            # NOT-rules can hold for a line that carries none of their keys (§4.4: absent → false).
            if evaluate(rule, {}):
                book.empty_true.append(sid)
            continue
        for term_no, term in enumerate(dnf):
            atoms = sorted(set(term))
            for atom_no, (key, token) in enumerate(atoms):
                book.eq_atoms.append((sid, term_no, atom_no, len(atoms), key, token))
    return book


def load_rulebook_tables(con: duckdb.DuckDBPyConnection, book: Rulebook) -> None:
    """Materialise the rulebook as temp tables ``eq_atoms`` and ``rule_keys``."""
    con.execute("CREATE OR REPLACE TEMP TABLE eq_atoms (sid INTEGER, term INTEGER, atom INTEGER, n_atoms INTEGER, key VARCHAR, token VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE rule_keys (sid INTEGER, key VARCHAR)")
    if book.eq_atoms:
        _bulk(con, "eq_atoms", book.eq_atoms, ["sid", "term", "atom", "n_atoms", "key", "token"])
    if book.rule_keys:
        _bulk(con, "rule_keys", book.rule_keys, ["sid", "key"])


def _bulk(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple], names: list[str]) -> None:
    import pyarrow as pa

    cols = list(zip(*rows))
    arrow = pa.table({n: list(c) for n, c in zip(names, cols)})
    con.register("_bulk_rows", arrow)
    try:
        con.execute(f"INSERT INTO {table} SELECT {', '.join(names)} FROM _bulk_rows")
    finally:
        con.unregister("_bulk_rows")
