"""Link limits of the ID mapping store (SPEC §1.7): when a limit is hit, the oldest go.

Checked after new links are written, only around the IDs those links touch (temp table
``touched(dpid, id)``), so the cost follows the job, not the size of the graph.

| node                         | its neighbours counted             | limit |
|------------------------------|------------------------------------|-------|
| cross-device ID (DPUUID)     | device advertising IDs (DAIDs)     | 100   |
| DAID                         | cross-device IDs, per DPID         | 10    |
| cookie/browser ID (platform UUID or a cookie data source's ID) | cookie/browser IDs | 1,000 |
| customer ID of a c2c file    | hashed emails of that file's DPID  | 10 (D-71) |

"Oldest" is the smallest ``last_seen``; links seen at the same instant are kept in a fixed
order (higher DPID, then higher ID first) so reruns evict the same links.
"""

from __future__ import annotations

import duckdb

from onramp.formats.ids import PLATFORM_UUID_DPID

XDEVICE_DAIDS = 100
DAID_XDEVICE_PER_DPID = 10
COOKIE_COOKIES = 1000
C2C_HASHED_EMAILS = 10


def evict_over_limits(
    con: duckdb.DuckDBPyConnection, *, env: str, c2c: tuple[int, int] | None = None
) -> int:
    """Delete links beyond the §1.7 limits around ``touched``; returns how many were evicted.

    ``c2c`` is (customer DPID, hashed-email DPID) when the links came from a ``c2c_id_`` file.
    """
    cust, hashed = c2c if c2c else (-1, -1)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE evict AS
        WITH kinds AS (
            SELECT dpid, CASE WHEN is_global THEN 'daid' WHEN id_type = 'cookie' THEN 'cookie'
                              WHEN id_type = 'cross_device' THEN 'xdevice' END AS kind
              FROM data_sources
            UNION ALL SELECT {PLATFORM_UUID_DPID}, 'cookie'
        ), dir AS (
            SELECT l.rowid AS rid, l.dpid_a AS nd, l.id_a AS ni, l.dpid_b AS md, l.id_b AS mi, l.last_seen
              FROM links l SEMI JOIN touched t ON t.dpid = l.dpid_a AND t.id = l.id_a WHERE l.env = $env
            UNION ALL
            SELECT l.rowid, l.dpid_b, l.id_b, l.dpid_a, l.id_a, l.last_seen
              FROM links l SEMI JOIN touched t ON t.dpid = l.dpid_b AND t.id = l.id_b WHERE l.env = $env
        ), cat AS (
            SELECT d.*,
              CASE WHEN d.nd = {int(cust)} AND d.md = {int(hashed)} THEN 'c2c'
                   WHEN kn.kind = 'xdevice' AND km.kind = 'daid' THEN 'xdevice_daids'
                   WHEN kn.kind = 'daid' AND km.kind = 'xdevice' THEN 'daid_xdevice'
                   WHEN kn.kind = 'cookie' AND km.kind = 'cookie' THEN 'cookie_cookies' END AS category
              FROM dir d LEFT JOIN kinds kn ON kn.dpid = d.nd LEFT JOIN kinds km ON km.dpid = d.md
        ), ranked AS (
            SELECT rid, category,
                   row_number() OVER (
                       PARTITION BY nd, ni, category, CASE WHEN category = 'daid_xdevice' THEN md END
                       ORDER BY last_seen DESC, md DESC, mi DESC) AS rn
              FROM cat WHERE category IS NOT NULL
        )
        SELECT DISTINCT rid FROM ranked
         WHERE rn > CASE category WHEN 'c2c' THEN {C2C_HASHED_EMAILS}
                                  WHEN 'xdevice_daids' THEN {XDEVICE_DAIDS}
                                  WHEN 'daid_xdevice' THEN {DAID_XDEVICE_PER_DPID}
                                  ELSE {COOKIE_COOKIES} END""",
        {"env": env},
    )
    n = con.execute("SELECT count(*) FROM evict").fetchone()[0]
    if n:
        con.execute("DELETE FROM links WHERE rowid IN (SELECT rid FROM evict)")
    return int(n)
