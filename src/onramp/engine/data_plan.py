"""The data-file plan (SPEC §3.4–§3.9): classify every line of a logical file, set-based.

Input: temp relation ``raw_lines(file_idx, line_no, line BLOB, too_long)`` holding all
split parts of one logical file (or one chunk of it). Output: temp view ``line_result``
with one row per non-blank line (its outcome code and counters), and views ``ops`` (the
trait changes of stored lines, in order) and ``direct_add_lists`` (final adds that need no
ordering, one row per profile). Nothing here touches durable tables; ``engine.apply`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np

from onramp.engine.resolve import resolve_ids
from onramp.engine.rulebook import Rulebook, load_rulebook_tables
from onramp.engine.sqltext import DEVICE_NAMESPACES, ascii_lower, lit, re_body
from onramp.formats.ids import EMAIL_LIKE_RE, GLOBAL_DEVICE_SOURCES, PLATFORM_UUID_RE, ZERO_GUID

# Column-1 namespaces (§1.8, §3.5).
ID_PLATFORM_UUID = "platform_uuid"  # profile (0, id)
ID_DEVICE = "device"  # global device source: profile (dpid, id)
ID_CROSS_DEVICE = "cross_device"  # customer profile (dpid, id)
ID_DEVICE_LEVEL = "device_level"  # customer ID resolved through links to a device

# Item-list grammar for lines with quotes (§3.4). RE2: no lookarounds.
_U = r'[^,="\t]+'


def _item_list_re(quoted: str) -> str:
    elem = f"(?:{quoted}|{_U}) *= *(?:{quoted}|{_U})|{_U}"
    item = f" *(?:{elem})? *"
    return f"{item}(?:,{item})*"


ITEM_LIST_RE = _item_list_re(r'"[^"\t]*"')
# The same lists whose quoted strings hold no ',' or '=' (most quoted lines): they split
# on ',' with string functions, which costs a third of the quote-aware regex split.
PLAIN_ITEM_LIST_RE = _item_list_re(r'"[^"\t,=]*"')
ITEM_SPLIT_RE = r'(?:"[^"]*"|[^,"])+'
KV_QUOTED_RE = r'^(?:"([^"]*)"|([^="]*?)) *= *(?:"([^"]*)"|([^="]*))$'


@dataclass(frozen=True)
class DataPlan:
    env: str
    odc: bool
    overwrite: bool
    file_dpid: int
    owner_dpid: int
    id_kind: str
    now: datetime
    max_lines_per_user: int = 200
    reject_email_like: bool = True
    link_ttl_days: int = 120
    max_hops: int = 3
    odc_ns: int | None = None  # ODC: the ID type of the file's first valid row, when known in advance
    native: bool = False  # simple profiles were merged natively; their lines that store nothing are ``native_result``


def _odc_ns_sql(col: str) -> str:
    return (
        f"CASE lower({col}) WHEN 'idfa' THEN 20915 WHEN 'android device id' THEN 20914 WHEN 'android' THEN 20914 "
        f"WHEN 'gaid' THEN 20914 WHEN 'aaid' THEN 20914 END"
    )


def _device_check_sql(uid: str, ns: str) -> str:
    """TRUE when ``uid`` is a valid ID of global device namespace ``ns`` (an SQL expression)."""
    arms = " ".join(f"WHEN {d} THEN regexp_full_match({uid}, {lit(re_body(f.regex))})" for d, f in GLOBAL_DEVICE_SOURCES.items())
    return f"(CASE {ns} {arms} ELSE false END AND {uid} <> {lit(ZERO_GUID)})"


def classify(con: duckdb.DuckDBPyConnection, plan: DataPlan, book: Rulebook) -> bool:
    """Build ``line_result`` and ``ops`` from ``raw_lines``; True when simple lines took the fast path."""
    fast = _fast_path_applies(con, plan, book)
    split_lines(con, plan, mark_simple=fast)
    _cap_and_check_ids(con, plan, fast)
    if fast:
        _evaluate_simple_lines(con, plan)
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW direct_add_lists AS SELECT NULL::INTEGER AS ns, NULL::VARCHAR AS pid, NULL::INTEGER[] AS sids WHERE false")
    _parse_items(con)
    _resolve(con, plan)
    _evaluate(con, plan, book)
    _collect(con, fast, plan.native)
    return fast


def stored_devices_sql() -> str:
    """Distinct device profiles (§6.2 Total devices) of the stored lines of ``line_result``."""
    return f"SELECT DISTINCT ns, pid FROM line_result WHERE code = 'stored' AND ns IN {DEVICE_NAMESPACES}"


def count_stored_devices(con: duckdb.DuckDBPyConnection, fast: bool) -> int:
    """``count(*)`` of ``stored_devices_sql``. A simple line whose user ID has no other line
    is a profile of its own, so those are counted without the DISTINCT over user IDs."""
    if not fast:
        return con.execute(f"SELECT count(*) FROM ({stored_devices_sql()})").fetchone()[0]
    return con.execute(
        f"""SELECT (SELECT count(*) FROM simple_result WHERE single AND code = 'stored' AND ns IN {DEVICE_NAMESPACES})
                 + (SELECT count(*) FROM (
                      SELECT DISTINCT ns, pid FROM (
                          SELECT ns, pid FROM simple_result WHERE NOT single AND code = 'stored'
                          UNION ALL SELECT ns, pid FROM general_result WHERE code = 'stored')
                       WHERE ns IN {DEVICE_NAMESPACES}))"""
    ).fetchone()[0]


def split_lines(con: duckdb.DuckDBPyConnection, plan: DataPlan, *, mark_simple: bool = False) -> None:
    """The first stage, ``cls``: blank lines dropped, fields split (also used alone by engine.chunks).

    ``mark_simple`` adds column ``simple``: the items are those of a simple line (the
    line's code and user ID are checked later)."""
    # Fields come from one string_split on TAB: substr/split_part index characters and
    # cost several times more on long lines.
    if plan.odc:
        split = """
          CASE WHEN len(f) >= 2 THEN f[1] END AS id_type,
          CASE WHEN len(f) >= 3 THEN f[2] END AS uid,
          CASE WHEN len(f) >= 3 THEN f[3] END AS rest,
          coalesce(code0, CASE WHEN len(f) < 3 THEN 'no_tab' WHEN f[1] = '' THEN 'empty_id_type'
                               WHEN f[2] = '' THEN 'empty_user_id' WHEN len(f) > 3 THEN 'extra_tab' END) AS code"""
    else:
        split = """
          NULL::VARCHAR AS id_type,
          CASE WHEN len(f) >= 2 THEN f[1] END AS uid,
          CASE WHEN len(f) >= 2 THEN f[2] END AS rest,
          coalesce(code0, CASE WHEN len(f) < 2 THEN 'no_tab' WHEN f[1] = '' THEN 'empty_user_id'
                               WHEN len(f) > 2 THEN 'extra_tab' END) AS code"""
    simple = f", coalesce(regexp_full_match(rest, {lit(SIMPLE_LINE_RE)}), false) AS simple" if mark_simple else ""
    # D-25: trailing spaces are trimmed in data files; blank = empty or only spaces (D-16).
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cls AS
        WITH dec AS (
            SELECT file_idx, line_no, too_long, control, try(decode(line)) AS t0 FROM raw_lines
        ), nb AS (
            SELECT file_idx, line_no, too_long, control, CASE WHEN ends_with(t0, ' ') THEN rtrim(t0, ' ') ELSE t0 END AS t FROM dec
        ), sp AS (
            SELECT file_idx, line_no,
              CASE WHEN too_long THEN 'too_long' WHEN t IS NULL THEN 'bad_utf8'
                   WHEN control THEN 'control' END AS code0,
              string_split(t, chr(9)) AS f
            FROM nb WHERE too_long OR t IS NULL OR t <> ''
        )
        SELECT *{simple} FROM (SELECT file_idx, line_no, {split} FROM sp)"""
    )


def _cap_and_check_ids(con: duckdb.DuckDBPyConnection, plan: DataPlan, fast: bool) -> None:
    cap = int(plan.max_lines_per_user)
    # §3.6/D-33: first `cap` structurally valid lines per user win, in split then line order.
    # Only users over the cap pay for the window function.
    # Users with more than one line. For the simple-line path also whether all their lines
    # are plain (simple, no removal), so that their adds need no ordering across lines.
    plain = "bool_and(simple AND NOT contains(rest, 'd_unsid'))" if fast else "false"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE repeated_uids AS
        SELECT uid, count(*) AS n, {plain} AS plain FROM cls WHERE code IS NULL GROUP BY uid HAVING count(*) > 1"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE discarded AS
        SELECT file_idx, line_no FROM (
            SELECT c.file_idx, c.line_no, row_number() OVER (PARTITION BY c.uid ORDER BY c.file_idx, c.line_no) AS rn
              FROM cls c WHERE c.code IS NULL AND c.uid IN (SELECT uid FROM repeated_uids WHERE n > {cap}))
        WHERE rn > {cap}"""
    )
    if plan.odc:
        # §3.2.1: every row must share the type of the first valid row.
        ns_expr = _odc_ns_sql("c.id_type")
        odc_ns = plan.odc_ns if plan.odc_ns is not None else first_odc_ns(con)
        ns_col = f"CASE WHEN {ns_expr} = {odc_ns} THEN {odc_ns} END"
    else:
        ns_col = "NULL::INTEGER"
    kind = plan.id_kind
    if plan.odc:
        id_check = f"CASE WHEN ns IS NULL THEN 'odc_type' WHEN NOT {_device_check_sql('uid', 'ns')} THEN 'invalid_device_id' END"
    elif kind == ID_PLATFORM_UUID:
        id_check = f"CASE WHEN NOT regexp_full_match(uid, {lit(re_body(PLATFORM_UUID_RE))}) THEN 'invalid_aam_id' END"
    elif kind == ID_DEVICE:
        id_check = f"CASE WHEN NOT {_device_check_sql('uid', str(plan.file_dpid))} THEN 'invalid_device_id' END"
    else:
        email = f"WHEN regexp_full_match(uid, {lit(re_body(EMAIL_LIKE_RE))}) THEN 'dpuuid_email'" if plan.reject_email_like else ""
        id_check = f"""CASE WHEN contains(uid, ':') OR contains(lower(uid), '%3a') THEN 'dpuuid_colon'
                            WHEN strlen(uid) > 1024 THEN 'dpuuid_too_long' {email} END"""
    any_discarded = con.execute("SELECT EXISTS (SELECT 1 FROM discarded)").fetchone()[0]
    if any_discarded:
        source = """SELECT c.*, {ns} AS ns, (d.line_no IS NOT NULL) AS is_discarded
              FROM cls c LEFT JOIN discarded d ON d.file_idx = c.file_idx AND d.line_no = c.line_no"""
    else:  # the usual case: no user over the cap, no join
        source = "SELECT c.*, {ns} AS ns, false AS is_discarded FROM cls c"
    # Lines with the final code of the line checks (NULL: checked fine). With the simple-line
    # path, ``st`` holds only the lines that are not simple; simple lines are checked where
    # they are evaluated (``checked_simple``), which saves a copy of the bulk of the file.
    checked = f"""SELECT file_idx, line_no, uid, rest, ns,
                   CASE WHEN code IS NOT NULL THEN code WHEN is_discarded THEN 'discarded' ELSE {id_check} END AS code
              FROM ({source.format(ns=ns_col)}) c"""
    if fast:
        con.execute(f"CREATE OR REPLACE TEMP VIEW checked_simple AS {checked} WHERE simple")
    con.execute(f"CREATE OR REPLACE TEMP TABLE st AS {checked} {'WHERE NOT simple' if fast else ''}")


def first_odc_ns(con: duckdb.DuckDBPyConnection) -> int:
    """§3.2.1: the namespace of the first structurally valid row in ``cls`` (-1: none)."""
    ns_expr = _odc_ns_sql("c.id_type")
    first = con.execute(
        f"SELECT {ns_expr} AS ns FROM cls c WHERE c.code IS NULL AND {ns_expr} IS NOT NULL ORDER BY file_idx, line_no LIMIT 1"
    ).fetchone()
    return first[0] if first else -1


# Simple lines (the bulk of a d_sid file): nothing but well-formed d_sid/d_unsid items.
SIMPLE_LINE_RE = r"d_(?:un)?sid=[0-9]{1,9}(?:, *d_(?:un)?sid=[0-9]{1,9})*"  # spaces only after commas
# Trait status codes of the lookup list: 0 unknown, 1 valid, 2 failed validation (§3.9).
_LUT_MAX_SPAN = 1_000_000


def _fast_path_applies(con: duckdb.DuckDBPyConnection, plan: DataPlan, book: Rulebook) -> bool:
    """Whether simple lines may skip the per-item tables (and the trait lookup list is built).

    They may when their profile is their user ID (no identity resolution) and no rule can
    fire on a line without signals; trait IDs must span a range small enough for a lookup list.
    """
    unresolved = plan.odc or plan.id_kind in (ID_PLATFORM_UUID, ID_DEVICE, ID_CROSS_DEVICE)
    if not unresolved or book.empty_true:
        return False
    # Built once per rulebook (a job's snapshot of the taxonomy), not for every chunk.
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'trait_lut' AND temporary").fetchone()[0]
    if not exists or con.execute("SELECT book FROM trait_lut").fetchone()[0] != book.key:
        owner = int(plan.owner_dpid)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE trait_lut AS
            WITH b AS (SELECT min(sid) AS lo, max(sid) AS hi FROM traits)
            SELECT {lit(book.key)} AS book, b.lo, b.hi, s.status, s.valid, s.failed
              FROM b, (SELECT list(st ORDER BY sid) AS status,
                              coalesce(list(CASE WHEN st = 1 THEN sid::INTEGER END ORDER BY sid), []) AS valid,
                              coalesce(list(CASE WHEN st = 2 THEN 1::UTINYINT END ORDER BY sid), []) AS failed
                         FROM (SELECT r.range AS sid,
                                      CASE WHEN t.sid IS NULL THEN 0 WHEN t.data_source = {owner} AND t.type = 'onboarded' THEN 1 ELSE 2 END::UTINYINT AS st
                                 FROM b, range(b.lo, b.hi + 1) r LEFT JOIN traits t ON t.sid = r.range
                                WHERE b.hi - b.lo < {_LUT_MAX_SPAN})) s"""
        )
    lo, has_list = con.execute("SELECT lo, status IS NOT NULL FROM trait_lut").fetchone()
    return lo is None or bool(has_list)


def trait_status(con: duckdb.DuckDBPyConnection, plan: DataPlan, book: Rulebook) -> tuple[np.ndarray, int] | None:
    """The trait lookup list (status by ``sid - lo``) where simple lines may take a short
    path (``_fast_path_applies``), for the native merge of simple profiles; else None."""
    if not _fast_path_applies(con, plan, book):
        return None
    lo, status = con.execute("SELECT lo, status FROM trait_lut").fetchall()[0]
    return np.array(status or [], dtype=np.uint8), int(lo or 0)


def _evaluate_simple_lines(con: duckdb.DuckDBPyConnection, plan: DataPlan) -> None:
    """``simple_result`` and the view ``simple_ops`` for simple lines, with list functions per line.

    Same outcome as the per-item path (the property tests compare both with the reference
    parser): status per directive as in ``dirs``, counters as in ``line_eval``. The ops are
    a view that re-splits the lines: cheaper than storing list columns, and read once.
    """
    overwrite = "true" if plan.overwrite else "false"
    ns = "ns" if plan.odc else ("0" if plan.id_kind == ID_PLATFORM_UUID else str(int(plan.file_dpid)))
    # ``single``: the line's profile has no other line; ``direct``: no line of its profile has
    # a removal, so its valid adds are final adds and need no ordering.
    lines = """
        SELECT k.file_idx, k.line_no, k.uid, k.rest, k.ns, k.code,
               k.code IS NULL AND r.uid IS NULL AS single,
               k.code IS NULL AND CASE WHEN r.uid IS NULL THEN NOT contains(k.rest, 'd_unsid') ELSE r.plain END AS direct
          FROM checked_simple k LEFT JOIN repeated_uids r ON r.uid = k.uid"""
    # Status per item: 1 valid, 2 failed validation, 0 unknown trait, 3 removal ignored (.overwrite).
    # Lines that failed a check keep their code and get no items (all lists NULL).
    directives = f"""
        SELECT file_idx, line_no, code, {ns} AS ns, uid AS pid, single, direct, sids, adds,
               list_transform(sids, lambda s, i: CASE WHEN NOT adds[i] AND {overwrite} THEN 3::UTINYINT
                    WHEN s BETWEEN l.lo AND l.hi THEN l.status[s - l.lo + 1] ELSE 0::UTINYINT END) AS status
          FROM (SELECT file_idx, line_no, code, ns, uid, single, direct,
                       list_transform(items, lambda x: CAST(CASE WHEN x[3] = 's' THEN x[7:] ELSE x[9:] END AS INTEGER)) AS sids,
                       list_transform(items, lambda x: x[3] = 's') AS adds
                  FROM (SELECT *, CASE WHEN code IS NULL THEN string_split(replace(rest, ' ', ''), ',') END AS items
                          FROM k WHERE NOT direct)),
               trait_lut l"""
    # Direct lines (the bulk) hold only adds: their trait IDs are looked up in the status
    # lists with list_select, lambda-free. Lambdas that capture a per-row list (``adds[i]``)
    # copy it for every element, which made this statement the costliest of a d_sid file.
    lo = con.execute("SELECT lo FROM trait_lut").fetchone()[0] or 0
    sids = "string_split(replace(replace(rest, ' ', ''), 'd_sid=', ''), ',')::INTEGER[]"
    direct = f"""
        SELECT file_idx, line_no, CASE WHEN len(realized) > 0 THEN 'stored' ELSE 'no_trait' END AS code, ns, pid,
               n_items, n_items - n_used AS n_unused, len(realized) AS n_realized, n_failed, single,
               CASE WHEN len(realized) > 0 THEN realized END AS add_sids,
               NULL::INTEGER[] AS op_sids, NULL::BOOLEAN[] AS op_adds, NULL::UTINYINT[] AS op_status
          FROM (SELECT file_idx, line_no, ns, pid, single, n_items, n_failed, coalesce(list_count(v), 0) AS n_used,
                       -- list_distinct drops the NULLs (items not valid); a list of one needs no distinct
                       CASE WHEN len(v) <= 1 THEN list_filter(v, lambda x: x IS NOT NULL) ELSE list_distinct(v) END AS realized
                  FROM (SELECT file_idx, line_no, {ns} AS ns, uid AS pid, single, len(ix) AS n_items,
                               list_select(l.valid, ix) AS v, coalesce(list_count(list_select(l.failed, ix)), 0) AS n_failed
                          FROM (SELECT *, list_transform({sids}, lambda s: s - {int(lo) - 1}) AS ix FROM k WHERE direct),
                               trait_lut l))"""
    # The directives of every other line (a removal somewhere in their profile, or a failed
    # line check) are kept for ``simple_ops``.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE simple_result AS
        WITH k AS MATERIALIZED ({lines}), d AS ({directives}), r AS (
            SELECT *, list_filter(sids, lambda s, i: adds[i] AND status[i] = 1) AS valid_adds FROM d
        ), c AS (
            SELECT *, len(sids) AS n_items,
                   CASE WHEN len(valid_adds) <= 1 THEN valid_adds ELSE list_distinct(valid_adds) END AS realized,
                   len(list_filter(status, lambda x: x = 1)) AS n_used,
                   len(list_filter(sids, lambda s, i: NOT adds[i] AND status[i] = 1)) AS n_removals,
                   len(list_filter(status, lambda x: x = 2)) AS n_failed
              FROM r)
        SELECT file_idx, line_no,
               CASE WHEN code IS NOT NULL THEN code WHEN len(realized) + n_removals > 0 THEN 'stored' ELSE 'no_trait' END AS code,
               CASE WHEN code IS NULL THEN ns END AS ns, CASE WHEN code IS NULL THEN pid END AS pid,
               coalesce(n_items, 0) AS n_items, coalesce(n_items - n_used, 0) AS n_unused,
               coalesce(len(realized), 0) AS n_realized, coalesce(n_failed, 0) AS n_failed,
               single, NULL::INTEGER[] AS add_sids,
               CASE WHEN n_used > 0 THEN sids END AS op_sids,
               CASE WHEN n_used > 0 THEN adds END AS op_adds,
               CASE WHEN n_used > 0 THEN status END AS op_status
          FROM c
        UNION ALL {direct}"""
    )
    # Direct lines' valid adds are their profile's final adds, no ordering needed; a
    # profile with several direct lines is merged by profile. They stay lists (one row per
    # profile, its ID written once) until they are inserted.
    con.execute(
        """CREATE OR REPLACE TEMP VIEW direct_add_lists AS
        SELECT ns, pid, add_sids AS sids FROM simple_result WHERE single AND add_sids IS NOT NULL
        UNION ALL
        SELECT ns, pid, list_distinct(flatten(list(add_sids))) AS sids FROM simple_result
         WHERE NOT single AND add_sids IS NOT NULL GROUP BY ns, pid"""
    )
    # Every other simple line's valid directives become ops (valid directives occur only on
    # stored lines).
    con.execute(
        """CREATE OR REPLACE TEMP VIEW simple_ops AS
        SELECT file_idx, line_no, pos, sid, CASE WHEN is_add THEN 'add' ELSE 'remove' END AS op, ns, pid FROM (
            SELECT file_idx, line_no, ns, pid, generate_subscripts(op_sids, 1) AS pos, unnest(op_sids) AS sid,
                   unnest(op_adds) AS is_add, unnest(op_status) AS status
              FROM simple_result WHERE op_sids IS NOT NULL)
         WHERE status = 1"""
    )


def _parse_items(con: duckdb.DuckDBPyConnection) -> None:
    """``items``: one row per non-empty item of the lines of ``st`` that passed the line checks.

    A line is split into items by its own quoting; what an item means (its form, key and
    value) depends on the item's text alone. A file repeats few item texts many times (1M
    key-value lines: 7.9M items, 196,000 distinct), so items are parsed once per distinct
    text and joined back.
    """
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE item_occ AS
        WITH q AS (
            SELECT file_idx, line_no, rest,
                   CASE WHEN NOT contains(rest, '"') THEN 'none'
                        WHEN regexp_full_match(rest, {lit(PLAIN_ITEM_LIST_RE)}) THEN 'plain'
                        WHEN regexp_full_match(rest, {lit(ITEM_LIST_RE)}) THEN 'quoted'
                        ELSE 'bad' END AS quoting
              FROM st WHERE code IS NULL
        ), src AS (
            -- Split on commas outside quotes; a cheap string_split where no quote holds one.
            SELECT file_idx, line_no, quoting <> 'bad' AS list_ok,
                   CASE WHEN quoting IN ('none', 'plain') THEN string_split(rest, ',')
                        ELSE regexp_extract_all(rest, {lit(ITEM_SPLIT_RE)}) END AS parts
              FROM q
        )
        SELECT file_idx, line_no, list_ok, unnest(parts) AS item, generate_subscripts(parts, 1) AS pos FROM src"""
    )
    kvq = lit(KV_QUOTED_RE)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE item_forms AS
        WITH u AS (
            SELECT item, {_trim("item")} AS it FROM (SELECT DISTINCT item FROM item_occ)
        ), f AS (
            -- Unquoted items are split once on '=' (string functions that index characters,
            -- like split_part and substr, cost 5-10x more); quoted ones take one regex pass.
            SELECT item, it,
                   CASE WHEN NOT contains(it, '"') THEN string_split(it, '=') END AS eq,
                   CASE WHEN contains(it, '"') AND regexp_full_match(it, {kvq})
                        THEN regexp_extract(it, {kvq}, ['qk', 'uk', 'qv', 'uv']) END AS q
              FROM u WHERE it <> ''
        ), kv AS (
            SELECT item,
              CASE WHEN eq IS NULL THEN CASE WHEN q IS NOT NULL THEN 'kvq' ELSE 'bad' END
                   WHEN len(eq) = 2 THEN 'kv'
                   WHEN len(eq) > 2 THEN 'bad'
                   WHEN regexp_full_match(it, '[0-9]+') THEN 'bare'
                   WHEN regexp_full_match(it, '[0-9]+:(?:0|-1)') THEN 'colon'
                   ELSE 'bad' END AS form,
              CASE WHEN eq IS NULL THEN CASE WHEN starts_with(it, '"') THEN q.qk ELSE q.uk END
                   WHEN len(eq) = 2 THEN {_trim("eq[1]")} END AS k_raw,
              CASE WHEN eq IS NULL THEN CASE WHEN ends_with(it, '"') THEN q.qv ELSE q.uv END
                   WHEN len(eq) = 2 THEN {_trim("eq[2]")}
                   WHEN contains(it, ':') THEN split_part(it, ':', 1)
                   ELSE it END AS v
              FROM f
        ), k AS (
            SELECT *, CASE WHEN form IN ('kv', 'kvq') THEN {_key("k_raw")} WHEN form = 'bare' THEN 'ic' END AS k FROM kv
        )
        SELECT row_number() OVER () AS iid, item, k, v,
          CASE WHEN form = 'colon' THEN 'remove'
               WHEN k = 'd_sid' THEN 'add'
               WHEN k = 'd_unsid' THEN 'remove'
               ELSE 'signal' END AS kind,
          (form = 'bad' OR (form IN ('kv', 'kvq') AND (k = '' OR v = ''))
             OR (k IN ('d_sid', 'd_unsid') AND NOT regexp_full_match(v, '[0-9]+'))) AS malformed
          FROM k"""
    )
    # Empty items have no form: the inner join drops them (D-26).
    con.execute(
        """CREATE OR REPLACE TEMP TABLE items AS
        SELECT o.file_idx, o.line_no, o.pos, f.iid, f.k, f.v, f.kind, (NOT o.list_ok OR f.malformed) AS malformed
          FROM item_occ o JOIN item_forms f ON f.item = o.item"""
    )
    con.execute("DROP TABLE item_occ")
    # A line is a Format Error if any item is malformed or no item is left (D-26, D-31).
    con.execute(
        """CREATE OR REPLACE TEMP TABLE item_status AS
        SELECT s.file_idx, s.line_no, s.uid, s.ns AS odc_ns, coalesce(i.n, 0) AS n_items,
               CASE WHEN i.n IS NULL THEN 'no_items' WHEN i.bad THEN 'malformed_item' END AS code
          FROM st s LEFT JOIN (
                SELECT file_idx, line_no, count(*) AS n, bool_or(malformed) AS bad FROM items GROUP BY ALL
             ) i ON i.file_idx = s.file_idx AND i.line_no = s.line_no
         WHERE s.code IS NULL"""
    )


def _trim(expr: str) -> str:
    """trim(expr) only where needed: most items have no surrounding spaces, and trim copies."""
    return f"CASE WHEN starts_with({expr}, ' ') OR ends_with({expr}, ' ') THEN trim({expr}) ELSE {expr} END"


def _key(expr: str) -> str:
    """The signal key: leading '-' dropped, A–Z lower-cased (D-24); lower() is exact on ASCII."""
    dashless = f"CASE WHEN starts_with({expr}, '-') THEN ltrim({expr}, '-') ELSE {expr} END"
    return f"CASE WHEN strlen({expr}) = length({expr}) THEN lower({dashless}) ELSE {ascii_lower(dashless)} END"


def _resolve(con: duckdb.DuckDBPyConnection, plan: DataPlan) -> None:
    """``line_profile(file_idx, line_no, ns, pid, n_items)`` for lines that parsed; pid NULL = no match."""
    kind = plan.id_kind
    if plan.odc:
        prof = "odc_ns AS ns, uid AS pid"
    elif kind == ID_PLATFORM_UUID:
        prof = "0 AS ns, uid AS pid"
    elif kind in (ID_DEVICE, ID_CROSS_DEVICE):
        prof = f"{int(plan.file_dpid)} AS ns, uid AS pid"
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE ev_ids AS SELECT DISTINCT uid FROM item_status WHERE code IS NULL")
        resolve_ids(con, source="ev_ids", dpid=plan.file_dpid, env=plan.env, now=plan.now,
                    link_ttl_days=plan.link_ttl_days, max_hops=plan.max_hops)
        con.execute(
            """CREATE OR REPLACE TEMP TABLE line_profile AS
            SELECT e.file_idx, e.line_no, r.ns, r.pid, e.n_items FROM item_status e LEFT JOIN resolved r ON r.uid = e.uid
             WHERE e.code IS NULL"""
        )
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE line_profile AS SELECT file_idx, line_no, {prof}, n_items FROM item_status WHERE code IS NULL")


def _evaluate(con: duckdb.DuckDBPyConnection, plan: DataPlan, book: Rulebook) -> None:
    """Per-line R, X, used signals and failed validations (§3.9, §4.6).

    Works on the items of every parsed line; lines that end in another bucket are
    filtered out when results are collected, which is cheaper than filtering items first.
    """
    load_rulebook_tables(con, book)
    owner = int(plan.owner_dpid)
    overwrite = "true" if plan.overwrite else "false"
    # Directives: valid, failed validation, unknown trait, or ignored removal.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE dirs AS
        SELECT i.file_idx, i.line_no, i.pos, i.kind, t.sid,
          CASE WHEN i.kind = 'remove' AND {overwrite} THEN 'ignored'
               WHEN t.sid IS NULL THEN 'unknown'
               WHEN t.data_source = {owner} AND t.type = 'onboarded' THEN 'valid'
               ELSE 'failed' END AS status
          FROM items i LEFT JOIN traits t ON t.sid = TRY_CAST(i.v AS INTEGER)
         WHERE i.kind IN ('add', 'remove') AND NOT i.malformed"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE rule_hits (file_idx INTEGER, line_no BIGINT, sid INTEGER)")
    con.execute("CREATE OR REPLACE TEMP TABLE sig_used (file_idx INTEGER, line_no BIGINT, pos BIGINT, sid INTEGER)")
    # ``realized_traits``: the distinct traits each line realizes (read once ``rule_hits`` is filled).
    # Key-value files rarely carry d_sid items: without a valid add, they are the (distinct)
    # rule hits alone, and no union with the directives is needed.
    dir_adds = con.execute("SELECT EXISTS (SELECT 1 FROM dirs WHERE kind = 'add' AND status = 'valid')").fetchone()[0]
    union = """SELECT DISTINCT file_idx, line_no, sid FROM (
                   SELECT file_idx, line_no, sid FROM dirs WHERE kind = 'add' AND status = 'valid'
                   UNION ALL SELECT file_idx, line_no, sid FROM rule_hits)"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW realized_traits AS {union if dir_adds else 'SELECT file_idx, line_no, sid FROM rule_hits'}")
    if book.eq_atoms or book.complex_rules:
        _evaluate_rules(con, book)
    has_rule_facts = con.execute("SELECT EXISTS (SELECT 1 FROM rule_hits) OR EXISTS (SELECT 1 FROM sig_used)").fetchone()[0]
    if not has_rule_facts:
        # Directive-only files (the d_sid case): one pass over the directives.
        con.execute(
            """CREATE OR REPLACE TEMP TABLE line_eval AS
            SELECT file_idx, line_no,
                   len(list_distinct(list(sid) FILTER (WHERE kind = 'add' AND status = 'valid'))) AS n_realized,
                   count(*) FILTER (WHERE status = 'valid') AS n_used,
                   count(*) FILTER (WHERE kind = 'remove' AND status = 'valid') AS n_removals,
                   count(*) FILTER (WHERE status = 'failed') AS n_failed
              FROM dirs GROUP BY file_idx, line_no"""
        )
    else:
        _line_eval_with_rules(con)
    _line_ops(con)


def _line_eval_with_rules(con: duckdb.DuckDBPyConnection) -> None:
    # One aggregation per line. Directive items are counted directly (one row per item);
    # realized traits (``realized_traits``) and used signals are distinct per line first, which is
    # much cheaper than count(DISTINCT …) per group.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE line_eval AS
        WITH facts AS (
            SELECT file_idx, line_no,
                   count(*) FILTER (WHERE status = 'valid') AS n_used,
                   count(*) FILTER (WHERE kind = 'remove' AND status = 'valid') AS n_removals,
                   count(*) FILTER (WHERE status = 'failed') AS n_failed,
                   0 AS n_realized
              FROM dirs GROUP BY file_idx, line_no
            UNION ALL
            SELECT file_idx, line_no, 0, 0, 0, count(*) FROM realized_traits GROUP BY file_idx, line_no
            UNION ALL
            SELECT file_idx, line_no, count(*), 0, 0, 0 FROM (SELECT DISTINCT file_idx, line_no, pos FROM sig_used)
             GROUP BY file_idx, line_no
        )
        SELECT file_idx, line_no, sum(n_realized) AS n_realized, sum(n_used) AS n_used,
               sum(n_removals) AS n_removals, sum(n_failed) AS n_failed
          FROM facts GROUP BY file_idx, line_no"""
    )


def _line_ops(con: duckdb.DuckDBPyConnection) -> None:
    # Trait changes in item order; a rule realization sits at its last contributing signal.
    # ``rule_hits`` is distinct by then (``_evaluate_rules``).
    # Positions only order adds against removals: without a valid removal they are moot.
    any_removal = con.execute("SELECT EXISTS (SELECT 1 FROM dirs WHERE kind = 'remove' AND status = 'valid')").fetchone()[0]
    if any_removal:
        rule_adds = """SELECT h.file_idx, h.line_no, coalesce(max(u.pos), 0) AS pos, h.sid, 'add' AS op
          FROM rule_hits h
          LEFT JOIN sig_used u ON u.file_idx = h.file_idx AND u.line_no = h.line_no AND u.sid = h.sid
         GROUP BY h.file_idx, h.line_no, h.sid"""
    else:
        rule_adds = "SELECT file_idx, line_no, 0 AS pos, sid, 'add' AS op FROM rule_hits"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE line_ops AS
        SELECT file_idx, line_no, pos, sid, kind AS op FROM dirs WHERE status = 'valid'
        UNION ALL
        {rule_adds}"""
    )


def _evaluate_rules(con: duckdb.DuckDBPyConnection, book: Rulebook) -> None:
    from onramp.rules.equality import sql_eq_tokens

    # A view: each reader filters the items itself, cheaper than copying 8M rows per 1M lines.
    con.execute("CREATE OR REPLACE TEMP VIEW sigs AS SELECT file_idx, line_no, pos, iid, k, v FROM items WHERE kind = 'signal' AND NOT malformed")
    if book.eq_atoms:
        # Equality rules are a join of (key, token) against the atom table, not a scan per
        # rule. The atoms an item matches depend on its text alone: they are found once per
        # distinct signal item (of a key some atom uses) and joined to the lines by item.
        # A term of one atom holds on any match, only terms of several atoms need counting.
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE item_atoms AS
            SELECT f.iid, a.sid, a.term, a.atom, a.n_atoms
              FROM (SELECT iid, k, unnest({sql_eq_tokens('v')}) AS tok FROM item_forms
                     WHERE kind = 'signal' AND NOT malformed AND k IN (SELECT DISTINCT key FROM eq_atoms)) f
              JOIN eq_atoms a ON a.key = f.k AND a.token = f.tok"""
        )
        matches = """(SELECT s.file_idx, s.line_no, a.sid, a.term, a.atom, a.n_atoms
              FROM sigs s JOIN item_atoms a ON a.iid = s.iid)"""
        # Hits are made distinct here (a line may repeat a signal, a rule hold by several
        # terms); the pivot's hits are distinct by construction and never share a rule with these.
        if any(n_atoms > 1 for _, _, _, n_atoms, _, _ in book.eq_atoms):
            con.execute(
                f"""INSERT INTO rule_hits
                SELECT DISTINCT file_idx, line_no, sid FROM (
                    SELECT file_idx, line_no, sid FROM {matches} m
                     GROUP BY file_idx, line_no, sid, term
                    HAVING count(DISTINCT atom) = any_value(n_atoms))"""
            )
        else:
            con.execute(f"INSERT INTO rule_hits SELECT DISTINCT file_idx, line_no, sid FROM {matches} m")
    if book.complex_rules:
        _evaluate_pivot(con, book)
    # A signal is used when its key occurs in the rule of a trait realized from its line.
    con.execute(
        """INSERT INTO sig_used
        SELECT s.file_idx, s.line_no, s.pos, r.sid
          FROM sigs s
          JOIN realized_traits r ON r.file_idx = s.file_idx AND r.line_no = s.line_no
          JOIN rule_keys k ON k.sid = r.sid AND k.key = s.k"""
    )


def _evaluate_pivot(con: duckdb.DuckDBPyConnection, book: Rulebook) -> None:
    """Non-equality rules: pivot each line's relevant signals once, then test columns."""
    pivot = book.pivot
    assert pivot is not None
    keys = ", ".join(lit(k) for k in pivot.keys)
    arms = ", ".join(f"CASE WHEN {expr} THEN {int(sid)} END" for sid, expr in pivot.rules)
    con.execute(
        f"""INSERT INTO rule_hits
        WITH ls AS (
            SELECT file_idx, line_no, {pivot.aggregates_sql()}
              FROM sigs WHERE k IN ({keys}) GROUP BY file_idx, line_no
        )
        SELECT file_idx, line_no, sid FROM (SELECT file_idx, line_no, unnest([{arms}]) AS sid FROM ls) WHERE sid IS NOT NULL"""
    )
    if book.empty_true:
        empty = ", ".join(str(int(s)) for s in book.empty_true)
        con.execute(
            f"""INSERT INTO rule_hits
            SELECT e.file_idx, e.line_no, unnest([{empty}]) FROM line_profile e
             WHERE NOT EXISTS (SELECT 1 FROM sigs s WHERE s.file_idx = e.file_idx AND s.line_no = e.line_no AND s.k IN ({keys}))"""
        )


def _collect(con: duckdb.DuckDBPyConnection, fast: bool, native: bool) -> None:
    """One row per non-blank line with its final code (§3.7 order) and counters (of the
    natively merged lines, only those that store nothing: engine/simple_profiles.py)."""
    columns = "file_idx, line_no, code, ns, pid, n_items, n_unused, n_realized, n_failed"
    simple_rows = f"UNION ALL SELECT {columns} FROM simple_result" if fast else ""
    if native:
        simple_rows += f" UNION ALL SELECT {columns} FROM native_result"
    simple_ops = "UNION ALL SELECT * FROM simple_ops" if fast else ""
    # Only lines of the per-item path are materialised; ``line_result`` is a view adding the
    # simple lines' rows, which are already a table (copying them cost as much as computing them).
    con.execute("DROP VIEW IF EXISTS line_result")
    con.execute(
        """CREATE OR REPLACE TEMP TABLE general_result AS
        SELECT s.file_idx, s.line_no,
               CASE WHEN s.code IS NOT NULL THEN s.code
                    WHEN i.code IS NOT NULL THEN i.code
                    WHEN lp.pid IS NULL THEN 'no_matching_id'
                    WHEN coalesce(le.n_realized, 0) + coalesce(le.n_removals, 0) > 0 THEN 'stored'
                    ELSE 'no_trait' END AS code,
               lp.ns, lp.pid,
               coalesce(lp.n_items, 0) AS n_items,
               coalesce(lp.n_items - coalesce(le.n_used, 0), 0) AS n_unused,
               coalesce(le.n_realized, 0) AS n_realized,
               CASE WHEN lp.pid IS NOT NULL THEN coalesce(le.n_failed, 0) ELSE 0 END AS n_failed
          FROM st s
          LEFT JOIN item_status i ON i.file_idx = s.file_idx AND i.line_no = s.line_no
          LEFT JOIN line_profile lp ON lp.file_idx = s.file_idx AND lp.line_no = s.line_no
          LEFT JOIN line_eval le ON le.file_idx = s.file_idx AND le.line_no = s.line_no"""
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW line_result AS SELECT * FROM general_result {simple_rows}")
    # A view: the profile changes read it once.
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW ops AS
        SELECT o.file_idx, o.line_no, o.pos, o.sid, o.op, r.ns, r.pid
          FROM line_ops o JOIN line_result r ON r.file_idx = o.file_idx AND r.line_no = o.line_no
         WHERE r.code = 'stored'
        {simple_ops}"""
    )
