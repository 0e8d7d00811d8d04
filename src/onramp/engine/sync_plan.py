"""The ID-sync plan (SPEC §2.3.2–§2.3.3): rows → links in the identity graph.

Input: ``raw_lines`` of one sync file. Output: temp table ``sync_result`` (one row per
non-blank row with its code) and, in ``apply_links``, upserted ``links``. Links are
stored undirected, smaller (dpid, id) end first, so a pair seen from either side is
one link.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from onramp.engine.link_limits import evict_over_limits

from onramp.engine.data_plan import _device_check_sql
from onramp.engine.sqltext import lit, re_body
from onramp.formats.ids import EMAIL_LIKE_RE, GLOBAL_DEVICE_SOURCES, PLATFORM_UUID_RE

HASHED_EMAIL_RE = "[0-9a-f]{64}"


def _column_check(k: int, dpid: int, *, c2c: bool, reject_email_like: bool) -> tuple[str, str]:
    """(format-error condition, id-bucket code expression) for column k (1-based)."""
    col = f"cols[{k}]"
    if dpid == 0:
        return "false", f"CASE WHEN NOT regexp_full_match({col}, {lit(re_body(PLATFORM_UUID_RE))}) THEN 'invalid_aam_id' END"
    if dpid in GLOBAL_DEVICE_SOURCES:
        return "false", f"CASE WHEN NOT {_device_check_sql(col, str(dpid))} THEN 'invalid_device_id' END"
    if c2c and k == 2:
        return f"NOT regexp_full_match({col}, {lit(HASHED_EMAIL_RE)})", "NULL"
    email = f" OR regexp_full_match({col}, {lit(re_body(EMAIL_LIKE_RE))})" if reject_email_like else ""
    return f"(contains({col}, ':') OR contains(lower({col}), '%3a') OR strlen({col}) > 1024{email})", "NULL"


def classify_sync(con: duckdb.DuckDBPyConnection, *, dpids: tuple[int, ...], c2c: bool, reject_email_like: bool) -> None:
    n = len(dpids)
    checks = [_column_check(k, d, c2c=c2c, reject_email_like=reject_email_like) for k, d in enumerate(dpids, start=1)]
    fe_cols = " OR ".join(fe for fe, _ in checks)
    id_codes = ", ".join(code for _, code in checks)
    bad_hash = "'bad_hashed_email'" if c2c else "'dpuuid_colon'"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE sync_result AS
        WITH dec AS (
            SELECT file_idx, line_no, too_long, control, line AS raw, try(decode(line)) AS t FROM raw_lines
             WHERE too_long OR octet_length(line) > 0
        ), s AS (
            SELECT *, CASE WHEN t IS NULL THEN [] ELSE string_split(t, chr(9)) END AS cols FROM dec
        ), c AS (
            SELECT *,
              CASE WHEN too_long THEN 'too_long' WHEN t IS NULL THEN 'bad_utf8'
                   WHEN ends_with(t, chr(9)) OR ends_with(t, ' ') THEN 'trailing_ws'
                   WHEN control THEN 'control'
                   WHEN len(cols) <> {n} THEN 'column_count'
                   WHEN list_bool_or(list_transform(cols, lambda x: x = '')) THEN 'empty_field'
                   WHEN list_bool_or(list_transform(cols, lambda x: x <> trim(x, ' '))) THEN 'field_spaces'
              END AS code0
            FROM s
        )
        SELECT file_idx, line_no, raw, t, cols,
               coalesce(code0,
                        CASE WHEN {fe_cols} THEN {bad_hash} END,
                        coalesce({id_codes}),
                        'stored') AS code
          FROM c"""
    )


def apply_links(
    con: duckdb.DuckDBPyConnection, *, dpids: tuple[int, ...], env: str, now: datetime, c2c: bool = False
) -> tuple[int, int, int]:
    """Link every non-master column to the master column (§2.3.3), then enforce the §1.7
    limits. Returns (created, refreshed, evicted)."""
    master = int(dpids[0])
    arms = " UNION ALL ".join(
        f"SELECT {int(d)} AS d1, cols[{k}] AS i1, {master} AS d2, cols[1] AS i2 FROM sync_result WHERE code = 'stored'"
        for k, d in enumerate(dpids[1:], start=2)
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE new_links AS
        SELECT DISTINCT
            CASE WHEN (d1, i1) <= (d2, i2) THEN d1 ELSE d2 END AS dpid_a,
            CASE WHEN (d1, i1) <= (d2, i2) THEN i1 ELSE i2 END AS id_a,
            CASE WHEN (d1, i1) <= (d2, i2) THEN d2 ELSE d1 END AS dpid_b,
            CASE WHEN (d1, i1) <= (d2, i2) THEN i2 ELSE i1 END AS id_b
          FROM ({arms}) WHERE NOT (d1 = d2 AND i1 = i2)"""
    )
    refreshed = con.execute(
        """SELECT count(*) FROM new_links n SEMI JOIN links l
            ON l.env = $env AND l.dpid_a = n.dpid_a AND l.id_a = n.id_a AND l.dpid_b = n.dpid_b AND l.id_b = n.id_b""",
        {"env": env},
    ).fetchone()[0]
    total = con.execute("SELECT count(*) FROM new_links").fetchone()[0]
    con.execute(
        """MERGE INTO links l USING new_links n
            ON l.env = $env AND l.dpid_a = n.dpid_a AND l.id_a = n.id_a AND l.dpid_b = n.dpid_b AND l.id_b = n.id_b
          WHEN MATCHED THEN UPDATE SET last_seen = $now
          WHEN NOT MATCHED THEN INSERT (env, dpid_a, id_a, dpid_b, id_b, last_seen) VALUES ($env, n.dpid_a, n.id_a, n.dpid_b, n.id_b, $now)""",
        {"env": env, "now": now},
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE touched AS
        SELECT dpid_a AS dpid, id_a AS id FROM new_links UNION SELECT dpid_b, id_b FROM new_links"""
    )
    evicted = evict_over_limits(con, env=env, c2c=(master, int(dpids[1])) if c2c else None)
    return int(total - refreshed), int(refreshed), evicted
