"""Applying a classified logical file to profiles (SPEC §3.8, §4.7).

A logical file is classified chunk by chunk (``engine.chunks``); chunks never share a
profile. ``ProfileChanges.stage`` reads each chunk's ``ops`` (trait operations in line
and item order), ``direct_adds`` (final adds of profiles with one line and no removal,
which need no ordering) and ``line_result``, and keeps the chunk's net effect; ``commit`` then changes
``realizations`` once for the whole file, inside the caller's transaction. Touching the
(large) realizations table once per file instead of once per chunk is what keeps big
files linear. Only the file's own changes are staged, so state before ``commit`` is the
state before the file — which is what removal counts and `.overwrite` compare against.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime
from pathlib import Path

import duckdb

from onramp.engine.scratch import ParquetPieces

# §4.7 (D-45): a qualification expires at the UTC midnight starting day date(realized_at) + ttl + 1.
EXPIRED = "(t.ttl_days > 0 AND $now >= date_trunc('day', r.realized_at) + to_days(t.ttl_days + 1))"

_SEQ = "(CAST(o.file_idx AS BIGINT) * 1000000000000000 + CAST(o.line_no AS BIGINT) * 100000 + o.pos)"

# Adds: refresh realized_at of existing realizations, insert the rest. Not one MERGE: its
# update applies matched rows in join order, and DuckDB 2.0 updates rows scattered over
# the table's vectors up to 10x slower (7-10 s instead of 1 s for 2.7M rows, depending on
# how the staged pieces interleave); updating by rowid scans the table in order.
_REFRESH_ADDS = """
    UPDATE realizations SET realized_at = $now
     WHERE rowid IN (SELECT r.rowid FROM realizations r JOIN {source} f
                        ON r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid)"""
_INSERT_NEW = "INSERT INTO realizations (env, ns, id, sid, realized_at) SELECT $env, f.ns, f.pid, f.sid, $now FROM {source} f"
_INSERT_ADDS = _INSERT_NEW + """
     WHERE NOT EXISTS (SELECT 1 FROM realizations r WHERE r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid)"""


def _upsert_adds(con: duckdb.DuckDBPyConnection, source: str, params: dict) -> None:
    # A data source's first file (a partner's backfill) has no realizations to refresh, and
    # every add is new: the refresh would only read every staged add to find nothing (15 s
    # for 60M adds), and the anti-join would build a table of other namespaces' rows.
    env = {"env": params["env"]}
    if con.execute(f"SELECT EXISTS (SELECT 1 FROM realizations WHERE env = $env AND ns IN (SELECT DISTINCT ns FROM {source}))",
                   env).fetchone()[0]:
        con.execute(_REFRESH_ADDS.format(source=source), params)
        con.execute(_INSERT_ADDS.format(source=source), params)
    else:
        con.execute(_INSERT_NEW.format(source=source), params)


_KEY = (("ns", "INTEGER"), ("pid", "VARCHAR"), ("sid", "INTEGER"))
_STAGED = {  # relation → columns
    "file_adds": _KEY,
    "file_add_lists": (*_KEY[:2], ("sids", "INTEGER[]")),  # final adds, one row per profile
    "file_removes": (*_KEY, ("op", "VARCHAR")),
    "file_first_removes": _KEY,
    "file_users": _KEY[:2],
}


class ProfileChanges:
    """The net trait changes of one logical file, staged per chunk and committed once.

    Staged changes are Parquet pieces under ``scratch`` (engine/scratch.py), not tables:
    a big file's changes would outgrow the memory a table inside the job's transaction
    may use (ADR 0004). At commit they are read back through views.

    ``con`` is where chunks are classified and staged; ``store`` (default: ``con``) is the
    job's transaction, where ``commit`` changes ``realizations``.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, env: str, now: datetime, overwrite: bool, owner_dpid: int,
                 scratch: Path, store: duckdb.DuckDBPyConnection | None = None):
        self.con, self.env, self.now, self.overwrite, self.owner = con, env, now, overwrite, owner_dpid
        self.store = store if store is not None else con
        self.removed_after_add = 0
        self.dir = Path(scratch) / f"stage-{uuid.uuid4().hex}"
        self.staged = {name: ParquetPieces(con, self.dir, name, columns) for name, columns in _STAGED.items()}

    def stage(self) -> None:
        if self.overwrite:
            self._stage_overwrite()
        else:
            self._stage_sync()

    def commit(self) -> int:
        """Apply the staged changes; returns Total removed traits."""
        try:
            for pieces in self.staged.values():
                pieces.expose(self.store)
            # Chunks never share a profile, and a chunk stages a profile's adds either as rows
            # (it has a removal) or as a list: no key occurs twice.
            self.store.execute(
                """CREATE OR REPLACE TEMP VIEW staged_adds AS
                SELECT ns, pid, sid FROM file_adds UNION ALL SELECT ns, pid, unnest(sids) AS sid FROM file_add_lists"""
            )
            removed = self._commit_overwrite() if self.overwrite else self._commit_sync()
            for name in (*self.staged, "staged_adds"):
                self.store.execute(f"DROP VIEW IF EXISTS {name}")
            return removed
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _stage_direct_adds(self) -> None:
        # Distinct per profile already (data_plan); their keys never occur in ``ops``.
        self.staged["file_add_lists"].append("SELECT ns, pid, sids FROM direct_add_lists")

    def _stage_add_lists(self, ops: str) -> None:
        """Final adds of ``ops`` (every operation an add) as one list per profile: cheaper
        to stage and to insert than a row per trait with the profile's ID repeated."""
        self.staged["file_add_lists"].append(f"SELECT ns, pid, list_distinct(list(sid)) AS sids FROM ({ops}) GROUP BY ns, pid")

    # -- .sync (§3.8.1): adds and removals in line and item order; the last operation wins --
    def _stage_sync(self) -> None:
        con = self.con
        self._stage_direct_adds()
        if not con.execute("SELECT EXISTS (SELECT 1 FROM ops WHERE op = 'remove')").fetchone()[0]:
            # No removal in this chunk (key-value files without d_unsid): every operation is
            # an add, so the final adds need no sequence numbers or ordering.
            self._stage_add_lists("SELECT ns, pid, sid FROM ops")
            return
        con.execute(f"CREATE OR REPLACE TEMP TABLE seq_ops AS SELECT o.ns, o.pid, o.sid, o.op, {_SEQ} AS seq FROM ops o")
        # Only keys with a removal need the order of their operations; every other key's last
        # operation is an add, so it skips the (costly) ordering and arg_max aggregation.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE removal_ops AS
            SELECT o.* FROM seq_ops o
              SEMI JOIN (SELECT DISTINCT ns, pid, sid FROM seq_ops WHERE op = 'remove') k
                ON k.ns = o.ns AND k.pid = o.pid AND k.sid = o.sid"""
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE final_removes AS SELECT ns, pid, sid, arg_max(op, seq) AS op FROM removal_ops GROUP BY ns, pid, sid"
        )
        self.staged["file_removes"].append("SELECT ns, pid, sid, op FROM final_removes")
        # A removal counts when the trait was there just before it: added earlier in this
        # file (counted here), or — for a key's first operation — qualified before the file
        # (counted at commit, against realizations as they were).
        con.execute(
            """CREATE OR REPLACE TEMP TABLE seqd AS
            SELECT ns, pid, sid, op, lag(op) OVER (PARTITION BY ns, pid, sid ORDER BY seq) AS prev FROM removal_ops"""
        )
        self.removed_after_add += con.execute("SELECT count(*) FROM seqd WHERE op = 'remove' AND prev = 'add'").fetchone()[0]
        self.staged["file_first_removes"].append("SELECT ns, pid, sid FROM seqd WHERE op = 'remove' AND prev IS NULL")
        self.staged["file_adds"].append(
            """SELECT DISTINCT ns, pid, sid FROM seq_ops o
                WHERE op = 'add' AND NOT EXISTS (SELECT 1 FROM final_removes f WHERE f.ns = o.ns AND f.pid = o.pid AND f.sid = o.sid)
               UNION ALL SELECT ns, pid, sid FROM final_removes WHERE op = 'add'"""
        )

    def _commit_sync(self) -> int:
        con, p = self.store, {"env": self.env, "now": self.now}
        removed = self.removed_after_add
        if con.execute("SELECT EXISTS (SELECT 1 FROM file_removes)").fetchone()[0]:
            removed += con.execute(
                f"""SELECT count(*) FROM (
                    SELECT DISTINCT f.ns, f.pid, f.sid FROM file_first_removes f
                      JOIN realizations r ON r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid
                      JOIN traits t ON t.sid = r.sid
                     WHERE NOT {EXPIRED})""",
                p,
            ).fetchone()[0]
            con.execute(
                """DELETE FROM realizations r USING file_removes f
                    WHERE r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid AND f.op = 'remove'""",
                {"env": self.env},
            )
        _upsert_adds(con, "staged_adds", p)
        return int(removed)

    # -- .overwrite (§3.8.2): per listed user, the target source's onboarded traits become R --
    def _stage_overwrite(self) -> None:
        # Users whose lines realize nothing are untouched (D-35); other sources never change.
        self.staged["file_users"].append("SELECT DISTINCT ns, pid FROM line_result WHERE code = 'stored'")
        self._stage_direct_adds()
        self._stage_add_lists("SELECT ns, pid, sid FROM ops WHERE op = 'add'")

    def _commit_overwrite(self) -> int:
        con, p = self.store, {"env": self.env, "now": self.now, "owner": self.owner}
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE ow_drop AS
            SELECT r.ns, r.id AS pid, r.sid, {EXPIRED} AS expired
              FROM realizations r
              JOIN file_users u ON r.env = $env AND r.ns = u.ns AND r.id = u.pid
              JOIN traits t ON t.sid = r.sid AND t.data_source = $owner AND t.type = 'onboarded'
             WHERE NOT EXISTS (SELECT 1 FROM staged_adds n WHERE n.ns = r.ns AND n.pid = r.id AND n.sid = r.sid)""",
            p,
        )
        removed = con.execute("SELECT count(*) FROM ow_drop WHERE NOT expired").fetchone()[0]
        con.execute(
            """DELETE FROM realizations r USING ow_drop d
                WHERE r.env = $env AND r.ns = d.ns AND r.id = d.pid AND r.sid = d.sid""",
            {"env": self.env},
        )
        _upsert_adds(con, "staged_adds", {"env": self.env, "now": self.now})  # distinct per chunk
        return int(removed)


