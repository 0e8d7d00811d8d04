"""Reject rows (SPEC §11.4): every line that did not end STORED, explained.

Rows accumulate in temp table ``rejects`` during a job and are written, per receipt,
as ``receipts/<receipt_id>/rejects.tsv.gz`` with columns file, line_number, bucket,
reason, hint, excerpt. Nothing is sampled away. Reasons come from the code table; Format
Errors are re-read by the reference parser for a precise, item-level reason.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from duckdb.sqltypes import BLOB, BOOLEAN, VARCHAR

from onramp.engine.codes import DIAGNOSABLE, LINE_CODES
from onramp.engine.scratch import ParquetPieces
from onramp.engine.sqltext import lit
from onramp.formats.ids import GLOBAL_DEVICE_SOURCES
from onramp.formats.lines import LineError, parse_data_line
from onramp.settings import Settings

COLUMNS = ("file", "line_number", "bucket", "reason", "hint", "excerpt")
EXCERPT_BYTES = 200
# §7.4/§11.4: values of private `p_` keys never appear in excerpts.
P_VALUE_RE = r'((?:^|[,\t]) *"?-*[pP]_[^=,"\t]*"? *= *)("[^"]*"|[^,\t]*)'


COLUMN_TYPES = (("rkey", "VARCHAR"), ("file", "VARCHAR"), ("line_number", "BIGINT"), ("bucket", "VARCHAR"),
                ("reason", "VARCHAR"), ("hint", "VARCHAR"), ("excerpt", "VARCHAR"))


def create_table(con: duckdb.DuckDBPyConnection, spool: Path) -> ParquetPieces:
    """Start the job's reject rows: the view ``rejects`` over Parquet pieces in ``spool``.

    Rows are spooled rather than inserted into a table: inside the job's transaction a
    table's rows stay in memory that DuckDB cannot spill, and a big bad file can have
    millions of them (ADR 0004). Pass the returned pieces to ``collect_*``; call
    ``prepare_connection`` on ``con`` first.
    """
    rows = ParquetPieces(con, spool, "rejects", COLUMN_TYPES)
    rows.expose()
    return rows


def prepare_connection(con: duckdb.DuckDBPyConnection) -> None:
    """What classifying and collecting need on a connection: ``line_codes`` and ``onramp_diagnose``.

    Call it once before the job's transaction starts: Python functions live in the
    database's shared catalog, and one created inside the transaction would be invisible
    to (and collide with) the job's work connection."""
    con.execute("CREATE OR REPLACE TEMP TABLE line_codes (code VARCHAR, bucket VARCHAR)")
    con.executemany("INSERT INTO line_codes VALUES (?, ?)", [(c, b.value) for c, (b, _, _) in LINE_CODES.items()])
    _register_diagnose(con)


def _texts(con: duckdb.DuckDBPyConnection, params: dict) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE code_text (code VARCHAR, bucket VARCHAR, reason VARCHAR, hint VARCHAR)")
    rows = [(c, b.value, r.format(**params), h.format(**params)) for c, (b, r, h) in LINE_CODES.items()]
    con.executemany("INSERT INTO code_text VALUES (?, ?, ?, ?)", rows)


def _excerpt(text_col: str, raw_col: str) -> str:
    masked = f"regexp_replace({text_col}, {lit(P_VALUE_RE)}, '\\1***', 'g')"
    return f"left(coalesce({masked}, CAST({raw_col} AS VARCHAR)), {EXCERPT_BYTES})"


def collect_data(rows: ParquetPieces, rkey: str, names: dict[int, str], plan, settings: Settings,
                 con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Append the reject rows of the classified chunk on ``con`` (default: the rows' own)."""
    con = con or rows.con
    dev = GLOBAL_DEVICE_SOURCES.get(plan.file_dpid)
    _texts(con, {
        "max_line_bytes": settings.inbound.max_line_bytes,
        "max_lines_per_user": settings.inbound.max_lines_per_user,
        "kind": dev.kind if dev else "device ID",
        "dpid": plan.file_dpid,
        "owner": plan.owner_dpid,
    })
    con.execute("CREATE OR REPLACE TEMP TABLE part_names (file_idx INTEGER, name VARCHAR)")
    con.executemany("INSERT INTO part_names VALUES (?, ?)", list(names.items()))
    diag = ", ".join(lit(c) for c in DIAGNOSABLE)
    odc = "true" if plan.odc else "false"
    rows.append(
        f"""SELECT {lit(rkey)} AS rkey, n.name AS file, r.line_no AS line_number, c.bucket,
               CASE WHEN r.diag IS NOT NULL THEN coalesce(nullif(split_part(r.diag, chr(31), 1), ''), c.reason)
                    WHEN r.code = 'no_trait' AND r.n_failed > 0
                    THEN c.reason || '; ' || r.n_failed || ' d_sid/d_unsid item(s) name traits that are not onboarded traits of data source {int(plan.owner_dpid)}'
                    ELSE c.reason END AS reason,
               CASE WHEN r.diag IS NOT NULL THEN coalesce(nullif(split_part(r.diag, chr(31), 2), ''), c.hint)
                    ELSE c.hint END AS hint,
               {_excerpt('r.t', 'r.raw')} AS excerpt
          FROM (SELECT lr.file_idx, lr.line_no, lr.code, lr.n_failed, rl.line AS raw, rtrim(try(decode(rl.line)), ' ') AS t,
                       -- the reference parser (Python, per line) runs once per Format Error line
                       CASE WHEN lr.code IN ({diag}) THEN onramp_diagnose(rl.line, {odc}) END AS diag
                  FROM line_result lr JOIN raw_lines rl ON rl.file_idx = lr.file_idx AND rl.line_no = lr.line_no
                 WHERE lr.code <> 'stored') r
          JOIN code_text c ON c.code = r.code JOIN part_names n ON n.file_idx = r.file_idx""",
        con,
    )
    rows.expose()


def collect_sync(rows: ParquetPieces, rkey: str, name: str, settings: Settings) -> None:
    con = rows.con
    _texts(con, {"max_line_bytes": settings.inbound.max_line_bytes, "max_lines_per_user": 0,
                 "kind": "device ID of its column's data source", "dpid": "", "owner": ""})
    rows.append(
        f"""SELECT {lit(rkey)} AS rkey, {lit(name)} AS file, r.line_no AS line_number, c.bucket, c.reason, c.hint,
               left(coalesce(r.t, CAST(r.raw AS VARCHAR)), {EXCERPT_BYTES}) AS excerpt
          FROM (SELECT sr.line_no, sr.code, rl.line AS raw, try(decode(rl.line)) AS t
                  FROM sync_result sr JOIN raw_lines rl ON rl.file_idx = sr.file_idx AND rl.line_no = sr.line_no
                 WHERE sr.code <> 'stored') r
          JOIN code_text c ON c.code = r.code""",
    )
    rows.expose()


def count(con: duckdb.DuckDBPyConnection, rkey: str) -> int:
    return con.execute("SELECT count(*) FROM rejects WHERE rkey = ?", [rkey]).fetchone()[0]


def write_file(con: duckdb.DuckDBPyConnection, rkey: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    cols = ", ".join(COLUMNS)
    con.execute(
        f"COPY (SELECT {cols} FROM rejects WHERE rkey = {lit(rkey)} ORDER BY file, line_number) "
        f"TO {lit(str(tmp))} (FORMAT csv, DELIMITER '\t', HEADER true, COMPRESSION gzip, QUOTE '', ESCAPE '')"
    )
    tmp.replace(path)


def problems(con: duckdb.DuckDBPyConnection) -> list[dict]:
    rows = con.execute("SELECT file, line_number, bucket, reason, hint FROM rejects ORDER BY file, line_number").fetchall()
    return [dict(zip(("file", "line_number", "bucket", "reason", "hint"), r)) for r in rows]


def diagnose_line(raw: bytes, odc: bool) -> str:
    """'reason<US>hint' of the reference parser for one raw line; '' when it accepts the line
    (the caller then falls back to the code's text)."""
    try:
        parse_data_line(raw, odc=odc)
    except LineError as exc:
        return f"{exc.reason}\x1f{exc.hint or ''}"
    return ""


def _register_diagnose(con: duckdb.DuckDBPyConnection) -> None:
    """``onramp_diagnose(raw, odc)`` → ``diagnose_line`` (Format Errors only).

    The function is registered once per database, in the catalog its connections share,
    and DuckDB keeps only a borrowed pointer to the Python callable there: the callable
    must outlive every connection, so it is this module-level function, never a closure
    (a closure died with the connection that registered it, and the next job's call
    crashed the process with a segmentation fault)."""
    try:
        con.create_function("onramp_diagnose", diagnose_line, [BLOB, BOOLEAN], VARCHAR, side_effects=False)
    except (duckdb.CatalogException, duckdb.NotImplementedException):
        pass  # already registered in this database (the catalog is shared by its connections)
