"""Applying a classified logical file to profiles (SPEC §3.8, §4.7).

Reads temp tables ``ops`` and ``line_result`` (from ``data_plan.classify``) and changes
``realizations`` inside the caller's transaction. Returns Total removed traits.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

# §4.7 (D-45): a qualification expires at the UTC midnight starting day date(realized_at) + ttl + 1.
EXPIRED = "(t.ttl_days > 0 AND $now >= date_trunc('day', r.realized_at) + to_days(t.ttl_days + 1))"

_SEQ = "(CAST(o.file_idx AS BIGINT) * 1000000000000000 + CAST(o.line_no AS BIGINT) * 100000 + o.pos)"

_UPSERT_ADDS = """
    MERGE INTO realizations r USING {source} f
       ON r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid
     WHEN MATCHED THEN UPDATE SET realized_at = $now
     WHEN NOT MATCHED THEN INSERT (env, ns, id, sid, realized_at) VALUES ($env, f.ns, f.pid, f.sid, $now)"""


def apply_sync(con: duckdb.DuckDBPyConnection, *, env: str, now: datetime) -> int:
    """§3.8.1: adds and removals in line and item order; the last operation on a trait wins."""
    p = {"env": env, "now": now}
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
    # A removal counts when the trait was there just before it: added earlier in this file,
    # or (first operation) qualified and unexpired before the job.
    removed = con.execute(
        f"""WITH had AS (
                SELECT DISTINCT f.ns, f.pid, f.sid FROM final_removes f
                  JOIN realizations r ON r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid
                  JOIN traits t ON t.sid = r.sid
                 WHERE NOT {EXPIRED}),
             seqd AS (
                SELECT o.ns, o.pid, o.sid, o.op, lag(o.op) OVER (PARTITION BY o.ns, o.pid, o.sid ORDER BY o.seq) AS prev
                  FROM removal_ops o)
        SELECT count(*) FROM seqd s LEFT JOIN had h ON h.ns = s.ns AND h.pid = s.pid AND h.sid = s.sid
         WHERE s.op = 'remove' AND (s.prev = 'add' OR (s.prev IS NULL AND h.sid IS NOT NULL))""",
        p,
    ).fetchone()[0]
    con.execute(
        """DELETE FROM realizations r USING final_removes f
            WHERE r.env = $env AND r.ns = f.ns AND r.id = f.pid AND r.sid = f.sid AND f.op = 'remove'""",
        {"env": env},
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE final_adds AS
        SELECT DISTINCT ns, pid, sid FROM seq_ops o
         WHERE op = 'add' AND NOT EXISTS (SELECT 1 FROM final_removes f WHERE f.ns = o.ns AND f.pid = o.pid AND f.sid = o.sid)
        UNION ALL SELECT ns, pid, sid FROM final_removes WHERE op = 'add'"""
    )
    con.execute(_UPSERT_ADDS.format(source="final_adds"), p)
    return int(removed)


def apply_overwrite(con: duckdb.DuckDBPyConnection, *, env: str, now: datetime, owner_dpid: int) -> int:
    """§3.8.2: per listed user, the target source's onboarded traits become the union of R.

    Users whose lines realize nothing are untouched (D-35); other sources never change.
    """
    p = {"env": env, "now": now, "owner": owner_dpid}
    con.execute("CREATE OR REPLACE TEMP TABLE ow_users AS SELECT DISTINCT ns, pid FROM line_result WHERE code = 'stored'")
    con.execute("CREATE OR REPLACE TEMP TABLE ow_new AS SELECT DISTINCT ns, pid, sid FROM ops WHERE op = 'add'")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE ow_drop AS
        SELECT r.ns, r.id AS pid, r.sid, {EXPIRED} AS expired
          FROM realizations r
          JOIN ow_users u ON r.env = $env AND r.ns = u.ns AND r.id = u.pid
          JOIN traits t ON t.sid = r.sid AND t.data_source = $owner AND t.type = 'onboarded'
         WHERE NOT EXISTS (SELECT 1 FROM ow_new n WHERE n.ns = r.ns AND n.pid = r.id AND n.sid = r.sid)""",
        p,
    )
    removed = con.execute("SELECT count(*) FROM ow_drop WHERE NOT expired").fetchone()[0]
    con.execute(
        """DELETE FROM realizations r USING ow_drop d
            WHERE r.env = $env AND r.ns = d.ns AND r.id = d.pid AND r.sid = d.sid""",
        {"env": env},
    )
    con.execute(_UPSERT_ADDS.format(source="ow_new"), {"env": env, "now": now})  # ow_new is distinct
    return int(removed)
