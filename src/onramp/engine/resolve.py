"""Identity resolution (SPEC §1.7, §1.8, §2.3.3): user IDs → device profiles.

Breadth-first over the link graph, at most ``max_hops`` hops, one join per hop, all
IDs of a file at once. Among the device nodes reached at the smallest depth, the
most recently seen link wins (§1.7: "the most recent link is the one used").
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from onramp.engine.sqltext import DEVICE_NAMESPACES


def edges_sql(env_param: str = "$env", since_param: str = "$since") -> str:
    """Both directions of every live link."""
    return f"""
        SELECT dpid_a AS s_dpid, id_a AS s_id, dpid_b AS t_dpid, id_b AS t_id, last_seen FROM links
         WHERE env = {env_param} AND last_seen >= {since_param}
        UNION ALL
        SELECT dpid_b, id_b, dpid_a, id_a, last_seen FROM links
         WHERE env = {env_param} AND last_seen >= {since_param}"""


def resolve_ids(con: duckdb.DuckDBPyConnection, *, source: str, dpid: int, env: str, now: datetime, link_ttl_days: int, max_hops: int) -> None:
    """Resolve the distinct ``uid`` values of table ``source`` (IDs of data source ``dpid``).

    Writes temp table ``resolved(uid, ns, pid)``; IDs without a device stay absent.
    """
    params = {"env": env, "since": now - timedelta(days=link_ttl_days)}
    con.execute(f"CREATE OR REPLACE TEMP TABLE edges AS {edges_sql()}", params)
    con.execute(f"CREATE OR REPLACE TEMP TABLE frontier AS SELECT DISTINCT uid, CAST($dpid AS INTEGER) AS n_dpid, uid AS n_id FROM {source}", {"dpid": dpid})
    con.execute("CREATE OR REPLACE TEMP TABLE resolved (uid VARCHAR, ns INTEGER, pid VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE visited AS SELECT uid, n_dpid, n_id FROM frontier")
    for _ in range(max_hops):
        con.execute(
            """CREATE OR REPLACE TEMP TABLE hop AS
               SELECT f.uid, e.t_dpid, e.t_id, e.last_seen
                 FROM frontier f JOIN edges e ON e.s_dpid = f.n_dpid AND e.s_id = f.n_id
                WHERE f.uid NOT IN (SELECT uid FROM resolved)"""
        )
        con.execute(
            f"""INSERT INTO resolved
                SELECT uid, arg_max(t_dpid, last_seen), arg_max(t_id, last_seen)
                  FROM hop WHERE t_dpid IN {DEVICE_NAMESPACES} GROUP BY uid"""
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE frontier AS
               SELECT DISTINCT h.uid, h.t_dpid AS n_dpid, h.t_id AS n_id FROM hop h
                WHERE h.uid NOT IN (SELECT uid FROM resolved)
                  AND NOT EXISTS (SELECT 1 FROM visited v WHERE v.uid = h.uid AND v.n_dpid = h.t_dpid AND v.n_id = h.t_id)"""
        )
        if con.execute("SELECT count(*) FROM frontier").fetchone()[0] == 0:
            break
        con.execute("INSERT INTO visited SELECT uid, n_dpid, n_id FROM frontier")
    for t in ("edges", "frontier", "visited", "hop"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
