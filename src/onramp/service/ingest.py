"""One inbound job (SPEC §3.7–§3.8, §6, DESIGN §4): files in, profiles and receipts out.

A job admits its files, loads each logical file's lines into the engine, classifies and
applies them, writes receipts and reject files, and commits everything — profile
changes, links, ledger rows, receipts — in ONE transaction. A crash before the commit
leaves no trace; after it, the ledger makes re-ingesting the same file a no-op.

Classifying a data file changes nothing durable, so it runs on a second connection
outside that transaction (the *work* connection, ADR 0004): temp tables a chunk replaces
there free their memory at once, where inside the transaction they are kept until the
commit. Its results reach the transaction as Parquet pieces (staged profile changes,
reject rows, stored devices). Device-level files are the exception: resolving their IDs
reads links this job may have written, which only the transaction sees.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from onramp.engine import chunks, kv_profiles, simple_profiles
from onramp.engine.apply import ProfileChanges
from onramp.engine.chunk_spool import ChunkWriter, read_ahead
from onramp.engine.data_plan import (
    ID_CROSS_DEVICE, ID_DEVICE_LEVEL, ID_PLATFORM_UUID, DataPlan, classify, count_stored_devices, stored_devices_sql, trait_status,
)
from onramp.engine.rulebook import Rulebook, build_rulebook
from onramp.engine.scratch import RAW_LINE_COLUMNS, SCRATCH_PARQUET, ParquetPieces, drop_quietly, parquet_source, raw_line_names
from onramp.engine.sqltext import lit
from onramp.engine.sync_plan import apply_links, classify_sync
from onramp.errors import FileRejected
from onramp.formats.names import DataFileName, SyncFileName
from onramp.formats.receipt import FileEntry, Receipt, add_counters, check_identity, empty_counters, render_text
from onramp.intake.containers import estimated_content_bytes, open_content, sha256_file
from onramp.intake.reader import LINE_SCHEMA, iter_line_batches
from onramp.service import notify, reject_files
from onramp.service import rejects as reject_rows
from onramp.service.admission import Candidate, SourceInfo, TaxonomySnapshot, admit
from onramp.server import synclog
from onramp.service.clock import Clock, system_clock
from onramp.settings import Settings
from onramp.store.db import connect, rollback_quietly

# Jobs of this process under way (their scratch directories are not stale). A set's add and
# discard are atomic under the GIL, and each job only touches its own ID.
_LIVE_JOBS: set[str] = set()

Progress = Callable[[str, int, int], None]  # (file name, lines read so far, bytes of the file) per batch


@dataclass
class JobResult:
    job_id: str
    receipts: list[Receipt]
    problems: list[dict] = field(default_factory=list)

    @property
    def any_rejected(self) -> bool:
        return any(f.status == "rejected" for r in self.receipts for f in r.files)


def load_snapshot(con: duckdb.DuckDBPyConnection) -> TaxonomySnapshot:
    partners = frozenset(r[0] for r in con.execute("SELECT pid FROM partners").fetchall())
    sources = {
        r[0]: SourceInfo(r[0], r[1], r[2], r[3], r[4])
        for r in con.execute("SELECT dpid, owner_pid, id_type, inbound_id_type, is_global FROM data_sources").fetchall()
    }
    mappings = frozenset((r[0], r[1]) for r in con.execute("SELECT pid, dpid FROM access_mappings").fetchall())
    return TaxonomySnapshot(partners, sources, mappings)


def file_uri(path: Path) -> str:
    return path.resolve().as_uri()


def run_job(
    settings: Settings,
    paths: list[Path],
    *,
    partner: int | None = None,
    env: str = "prod",
    reprocess: bool = False,
    dry_run: bool = False,
    clock: Clock = system_clock,
    uris: dict[Path, str] | None = None,
    progress: Progress | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    unreadable: dict[Path, FileRejected] | None = None,
) -> JobResult:
    """Process ``paths`` as one job. ``dry_run`` classifies everything and changes nothing.

    ``unreadable``: paths the drop zone could not fetch (no file there) and why; each is
    listed in its receipt as a rejected file (admission.admit, SPEC §3.1 "access denied").
    """
    own = con is None
    con = con or connect(settings)
    try:
        return _Job(settings, con, env=env, clock=clock, dry_run=dry_run, progress=progress).run(
            paths, partner=partner, reprocess=reprocess, uris=uris or {}, unreadable=unreadable or {}
        )
    finally:
        if own:
            con.close()


class _Job:
    def __init__(self, settings: Settings, con: duckdb.DuckDBPyConnection, *, env: str, clock: Clock, dry_run: bool, progress: Progress | None):
        self.s = settings
        self.con = con
        self.env = env
        self.clock = clock
        self.dry_run = dry_run
        self.progress = progress
        self.job_id = uuid.uuid4().hex
        self.start = clock()
        self.rulebooks: dict[int, Rulebook] = {}
        self._kv_rules: dict[str, object] = {}  # a rulebook's key -> its native form (or None), compiled once per job
        self.scratch = Path(settings.data_dir) / "tmp"
        # This job's scratch files (engine/scratch.py): spooled lines and staged changes of
        # the data file being processed, and the job's reject rows and stored devices.
        self._spool_dir = self.scratch / f"spool-{self.job_id}"
        self._pieces_dir = self.scratch / f"pieces-{self.job_id}"
        self._work: duckdb.DuckDBPyConnection | None = None  # opened by the first data file
        self._keyring = None
        self._shared_receipts: set[tuple] = set()

    # -- orchestration ---------------------------------------------------------------
    def run(self, paths: list[Path], *, partner: int | None, reprocess: bool, uris: dict[Path, str],
            unreadable: dict[Path, FileRejected]) -> JobResult:
        con = self.con
        if not self.dry_run:
            reject_files.recover(self.s.data_dir, con)
        _remove_stale_scratch(self.scratch)
        reject_rows.prepare_connection(con)  # before the transaction (see there)
        if not self.dry_run:
            synclog.load_committed(con, self.s.data_dir, skip_on_conflict=True)  # HTTP ID syncs logged so far (§2.1) resolve this job's lines
        con.execute("BEGIN TRANSACTION")
        _LIVE_JOBS.add(self.job_id)
        try:
            snapshot = load_snapshot(con)
            cands = [
                # An unreadable part has no bytes here: size 0, and no hash (the duplicate check skips it).
                admit(p, uris.get(p, file_uri(p)), 0 if p in unreadable else p.stat().st_size, snapshot, partner=partner,
                      accept_short_timestamp=self.s.inbound.accept_short_timestamp, unreadable=unreadable.get(p))
                for p in paths
            ]
            for c in cands:
                self._check_duplicate(c, reprocess)
            groups: dict[tuple, list[Candidate]] = defaultdict(list)
            for c in sorted(cands, key=lambda c: c.order_key()):
                groups[c.group_key()].append(c)
            receipts = {key: self._new_receipt(key) for key in groups}
            self._rejects = reject_rows.create_table(con, self._pieces_dir)
            self._devices = ParquetPieces(con, self._pieces_dir, "stored_devices",
                                          (("rkey", "VARCHAR"), ("ns", "INTEGER"), ("pid", "VARCHAR")))
            logical_files = self._logical_files(sorted(cands, key=lambda c: c.order_key()))
            # Total devices of a receipt with one logical file is a sum over its chunks (they
            # never share a profile); across several files it needs one DISTINCT at the end.
            self._shared_receipts = {k for k, n in Counter(lf[0].group_key() for lf in logical_files).items() if n > 1}
            for logical in logical_files:
                receipt = receipts[logical[0].group_key()]
                if logical[0].is_sync:
                    self._process_sync(logical, receipt)
                else:
                    self._process_data(logical, receipt)
            end = self.clock()
            out = []
            for key, receipt in receipts.items():
                receipt.job_end = end
                if receipt.kind == "data":
                    if key in self._shared_receipts:  # otherwise summed per chunk
                        self._devices.expose()
                        receipt.counters["total_devices"] = con.execute(
                            "SELECT count(*) FROM (SELECT DISTINCT ns, pid FROM stored_devices WHERE rkey = ?)", [receipt.receipt_id]
                        ).fetchone()[0]
                    check_identity(receipt.counters)
                out.append(receipt)
            problems = reject_rows.problems(con) if self.dry_run else []
            if self.dry_run:
                con.execute("ROLLBACK")
            else:
                self._persist(out, cands)
                con.execute("COMMIT")
                reject_files.publish(self.s.data_dir, self.job_id)
            return JobResult(self.job_id, out, problems)
        except BaseException:
            rollback_quietly(con)
            reject_files.discard(self.s.data_dir, self.job_id)
            raise
        finally:
            _LIVE_JOBS.discard(self.job_id)
            if self._work is not None:
                self._work.close()
            shutil.rmtree(self._pieces_dir, ignore_errors=True)

    def _new_receipt(self, key: tuple) -> Receipt:
        kind, pid, dpid, target = key
        return Receipt(receipt_id=uuid.uuid4().hex, kind=kind, partner=pid, dpid=dpid, target_dpid=target,
                       environment=self.env, job_start=self.start, job_end=self.start,
                       counters=empty_counters("id_sync" if kind == "id_sync" else "data"))

    @staticmethod
    def _logical_files(cands: list[Candidate]) -> list[list[Candidate]]:
        """Split parts of one base name form a logical file (§3.6, §3.8.2)."""
        by_base: dict[tuple, list[Candidate]] = defaultdict(list)
        for c in cands:
            key = (c.group_key(), c.name.base_name if c.name is not None else c.path.name)
            by_base[key].append(c)
        return list(by_base.values())

    def _check_duplicate(self, c: Candidate, reprocess: bool) -> None:
        """A file version (name + content hash) already in the ledger is a duplicate, whether it
        was applied or rejected: re-running a job after a crash must equal one uninterrupted run.
        ``--reprocess`` processes it again (e.g. after fixing the taxonomy for a rejected file)."""
        if not c.path.is_file():
            return
        c.sha256 = sha256_file(c.path)
        if reprocess:
            return
        seen = self.con.execute(
            "SELECT status, reason FROM files WHERE env = ? AND name = ? AND sha256 = ? ORDER BY processed_at DESC LIMIT 1",
            [self.env, c.path.name, c.sha256],
        ).fetchone()
        if seen is None:
            return
        c.duplicate = True
        if seen[0] == "rejected":
            c.rejected = seen[1] or "rejected"
            c.hint = "this exact file was rejected before; fix it and send a new version, or run again with --reprocess"

    # -- loading ---------------------------------------------------------------------------
    def _load_parts(self, parts: list[Candidate], table: str = "raw_lines") -> dict[int, Candidate]:
        """Stream every live part into ``table``; parts failing container checks are rejected."""
        con = self.con
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({', '.join(f'{name} {kind}' for name, kind in RAW_LINE_COLUMNS)})")
        live: dict[int, Candidate] = {}
        for idx, c in enumerate(parts):
            if c.rejected or c.duplicate:
                continue
            try:
                self._load_one(idx, c, table)
                live[idx] = c
            except FileRejected as exc:
                c.rejected, c.hint = exc.message, exc.hint
                con.execute(f"DELETE FROM {table} WHERE file_idx = ?", [idx])
        return live

    def _load_one(self, idx: int, c: Candidate, table: str) -> None:
        for batch in self._line_batches(c):
            self.con.register("_batch", batch)
            try:
                self.con.execute(f"INSERT INTO {table} BY NAME SELECT {idx} AS file_idx, * FROM _batch")
            finally:
                self.con.unregister("_batch")

    def _spool_parts(self, parts: list[Candidate], odc: bool, con: duckdb.DuckDBPyConnection, n_chunks: int) -> dict[int, Candidate]:
        """Stream every live part of a data file to Parquet, dealt into ``n_chunks`` chunks by
        profile hash (``spool/part-<i>/chunk=<k>/``); the view ``raw_all`` reads them all.

        Spooling keeps the lines out of the job's transaction: rows inserted into a table
        inside it stay in transaction-local memory that the DuckDB memory limit does not
        cover (1.1 GB beyond the limit for a 780 MB file). DuckDB pulls the reader's batches
        and writes the partitions on its own threads while Python decompresses, which halves
        spooling plus partitioning. Parts failing container checks are rejected.
        """
        # Lines are dealt as they are read where the extension can (chunks.line_chunks).
        deal = chunks.deals_while_reading(odc, n_chunks)
        raw_schema = pa.schema([("file_idx", pa.int32()), *LINE_SCHEMA])
        schema = pa.schema([*raw_schema, *([("chunk", pa.uint32())] if deal else [])])
        spool = self._spool_dir
        spool.mkdir(parents=True, exist_ok=True)
        key_sql = chunks.uid_hash_sql(odc)
        chunk = "chunk" if deal else f"{key_sql} % {n_chunks}" if n_chunks > 1 else "0"
        live: dict[int, Candidate] = {}
        for idx, c in enumerate(parts):
            if c.rejected or c.duplicate:
                continue
            failed: list[BaseException] = []
            batches = self._part_batches(idx, c, schema, failed, n_chunks if deal else 0)
            if deal:  # no SQL needed on the way to disk (engine/chunk_spool.py)
                writer = ChunkWriter(spool / f"part-{idx}", raw_schema)
                try:
                    for batch in read_ahead(batches):
                        writer.write(batch.select(raw_schema.names), batch.column("chunk").to_numpy())
                finally:
                    writer.close()
            else:
                con.register("_spool_reader", pa.RecordBatchReader.from_batches(schema, batches))
                try:
                    con.execute(
                        f"""COPY (SELECT {raw_line_names()}, {chunk} AS chunk FROM _spool_reader)
                            TO {lit(str(spool / f"part-{idx}"))} ({SCRATCH_PARQUET}, PARTITION_BY (chunk))"""
                    )
                finally:
                    con.unregister("_spool_reader")
            if failed and isinstance(failed[0], FileRejected):
                c.rejected, c.hint = failed[0].message, failed[0].hint
                shutil.rmtree(spool / f"part-{idx}", ignore_errors=True)
            elif failed:
                raise failed[0]
            else:
                live[idx] = c
        source = parquet_source(self._spooled_files(), RAW_LINE_COLUMNS)
        con.execute(f"CREATE OR REPLACE TEMP VIEW raw_all AS SELECT {raw_line_names()}, {key_sql} AS uid_hash FROM {source}")
        return live

    def _spooled_line_bytes(self, con: duckdb.DuckDBPyConnection) -> int:
        """Bytes of the spooled lines themselves (from the Parquet footers), comparable with
        the content size the spool's chunks were guessed from."""
        files = self._spooled_files()
        if not files:
            return 0
        return con.execute(
            f"SELECT coalesce(sum(total_uncompressed_size), 0) FROM parquet_metadata([{', '.join(lit(str(f)) for f in files)}]) WHERE path_in_schema = 'line'"
        ).fetchone()[0]

    def _spooled_files(self, chunk: int | str = "*") -> list[Path]:
        return sorted(self._spool_dir.glob(f"part-*/chunk={chunk}/*.parquet"))

    def _part_batches(self, idx: int, c: Candidate, schema: pa.Schema, failed: list[BaseException],
                      deal_chunks: int = 0) -> Iterator[pa.RecordBatch]:
        """The part's lines as batches for DuckDB to pull (with ``deal_chunks``, each line's
        chunk too). An error ends the stream and is kept in ``failed`` (DuckDB would turn it
        into a generic error)."""
        try:
            for batch in self._line_batches(c):
                file_idx = pa.array(np.full(batch.num_rows, idx, dtype=np.int32))
                dealt = [chunks.line_chunks(batch.column("line"), deal_chunks)] if deal_chunks else []
                yield pa.RecordBatch.from_arrays([file_idx, *batch.columns, *dealt], schema=schema)
        except GeneratorExit:  # DuckDB stopped reading (its COPY failed and raises on its own)
            raise
        except BaseException as exc:  # noqa: BLE001 - re-raised (or turned into a rejection) after the COPY
            failed.append(exc)

    def _line_batches(self, c: Candidate) -> Iterator[pa.RecordBatch]:
        suffix = c.name.suffix if c.name is not None else None
        lines = 0
        with open_content(c.path, suffix, limits=self.s.inbound, keyring=self._keyring_for(suffix), scratch_dir=self.scratch) as stream:
            for batch in iter_line_batches(stream, max_line_bytes=self.s.inbound.max_line_bytes):
                yield batch
                lines += batch.num_rows
                if self.progress:
                    self.progress(c.path.name, lines, c.size)

    def _keyring_for(self, suffix: str | None):
        if suffix not in ("pgp", "gpg"):
            return None
        if self._keyring is None:
            from onramp.intake.keys import PlatformKeyring

            self._keyring = PlatformKeyring(Path(self.s.data_dir) / "gnupg")
            self._keyring.ensure_key()
        return self._keyring

    def _reject_empty(self, live: dict[int, Candidate], table: str) -> None:
        """§3.3 check 6: a part without a non-blank line is an empty file."""
        counts = dict(self.con.execute(f"SELECT file_idx, count(*) FROM {table} GROUP BY file_idx").fetchall())
        for idx, c in list(live.items()):
            if counts.get(idx, 0) == 0:
                c.rejected, c.hint = "empty file", "send at least one non-blank line"
                del live[idx]

    # -- data files --------------------------------------------------------------------------
    def _process_data(self, parts: list[Candidate], receipt: Receipt) -> None:
        self._list_files(parts, receipt)
        odc = bool(getattr(parts[0].name, "odc", False))  # no name: rejected, nothing is loaded
        by_device = parts[0].id_kind == ID_DEVICE_LEVEL and not odc
        work = self.con if by_device else self._work_connection()
        # Chunks are dealt while spooling when their number can be guessed from the files'
        # sizes; device-level lines are dealt by the device they resolve to, known only later.
        guess = 1 if by_device else chunks.chunks_for_bytes(
            sum(estimated_content_bytes(c.path, c.name.suffix) for c in parts if not (c.rejected or c.duplicate)),
            self.s.engine.chunk_bytes)
        try:
            self._process_spooled(parts, receipt, self._spool_parts(parts, odc, work, guess), work, guess)
        finally:
            drop_quietly(work, "VIEW", "raw_all")
            shutil.rmtree(self._spool_dir, ignore_errors=True)

    def _work_connection(self) -> duckdb.DuckDBPyConnection:
        """The connection data files are classified on, outside the job's transaction.

        It sees committed state only, so it gets its own copy of the taxonomy as the job
        read it (a taxonomy applied meanwhile must not change half a file)."""
        if self._work is None:
            work = self.con.cursor()
            work.register("_job_traits", self.con.sql("SELECT * FROM traits").to_arrow_table())
            work.execute("CREATE TEMP TABLE traits AS SELECT * FROM _job_traits")  # shadows main.traits
            work.unregister("_job_traits")
            reject_rows.prepare_connection(work)
            self._work = work
        return self._work

    def _process_spooled(self, parts: list[Candidate], receipt: Receipt, live: dict[int, Candidate],
                         work: duckdb.DuckDBPyConnection, spooled_chunks: int) -> None:
        if not live:
            return self._finish_listing(parts, receipt)
        name: DataFileName = parts[0].name  # type: ignore[assignment]
        owner = name.owner_dpid
        if owner not in self.rulebooks:
            self.rulebooks[owner] = build_rulebook(self.con, owner)
        plan = DataPlan(
            env=self.env, odc=name.odc, overwrite=name.mode == "overwrite", file_dpid=name.dpid, owner_dpid=owner,
            id_kind=parts[0].id_kind or "", now=self.start,
            max_lines_per_user=self.s.inbound.max_lines_per_user,
            reject_email_like=self.s.identity.reject_email_like_ids,
            link_ttl_days=self.s.identity.link_ttl_days, max_hops=self.s.identity.max_resolution_hops,
        )
        # The spooled parts are uncompressed Parquet: their size is about the lines' bytes.
        n_chunks = chunks.chunk_count(work, self.s.engine.chunk_lines, self._spooled_line_bytes(work), self.s.engine.chunk_bytes)
        # The spool's own chunks serve unless the guess was too low (chunks over 1.5x the
        # bound: a multi-member gzip's trailer only tells the last member's size) or far
        # too high (many tiny chunks); else the lines are dealt again.
        dealt = None
        if 2 * n_chunks <= 3 * spooled_chunks and spooled_chunks <= 4 * n_chunks:
            n_chunks, dealt = spooled_chunks, self._spooled_files
        plan = chunks.prepare(work, plan, n_chunks)
        non_blank: dict[int, int] = defaultdict(int)
        changes = ProfileChanges(work, env=self.env, now=self.start, overwrite=plan.overwrite, owner_dpid=owner,
                                 scratch=self._spool_dir, store=self.con)
        merge = self._native_merge(work, plan) if parts[0].group_key() not in self._shared_receipts else None
        # With the spool's own chunks, each chunk's native merge is done ahead, on a thread.
        ahead = (simple_profiles.MergeAhead([dealt(k) for k in range(n_chunks)], merge)
                 if merge is not None and dealt is not None else None)
        try:
            self._run_chunks(parts, receipt, live, work, plan, changes, n_chunks, dealt, merge, ahead, non_blank)
        finally:
            if ahead is not None:
                ahead.close()
        receipt.counters["total_removed_traits"] += changes.commit()
        # §3.3 check 6, over all chunks: a part without a non-blank line is an empty file
        # (it had no lines, so it changed nothing and has no reject rows).
        for idx, c in live.items():
            if non_blank[idx] == 0:
                c.rejected, c.hint = "empty file", "send at least one non-blank line"
        self._finish_listing(parts, receipt)

    def _run_chunks(self, parts: list[Candidate], receipt: Receipt, live: dict[int, Candidate], work: duckdb.DuckDBPyConnection,
                    plan: DataPlan, changes: ProfileChanges, n_chunks: int, dealt, merge,
                    ahead: simple_profiles.MergeAhead | None, non_blank: dict[int, int]) -> None:
        """Classify, stage and count each chunk of a spooled data file."""
        shared = parts[0].group_key() in self._shared_receipts
        for k in chunks.chunk_views(work, plan, n_chunks, self._spool_dir, dealt=dealt):
            merged = None
            if merge is not None:
                merged = self._merge_simple_profiles(work, merge, ahead.take(k) if ahead is not None else None)
            fast = classify(work, replace(plan, native=merged is not None), self.rulebooks[plan.owner_dpid])
            for idx, n in work.execute("SELECT file_idx, count(*) FROM line_result GROUP BY file_idx").fetchall():
                non_blank[idx] += n
            changes.stage()
            add_counters(receipt.counters, _data_counters(work))
            if shared:
                self._devices.append(f"SELECT {lit(receipt.receipt_id)} AS rkey, ns, pid FROM ({stored_devices_sql()})", work)
            else:
                receipt.counters["total_devices"] += count_stored_devices(work, fast)
            if merged is not None:
                for name, table in _native_stages(merged):
                    if table.num_rows:
                        changes.staged[name].append(f"SELECT * FROM _native_{name}", work)
                changes.removed_after_add += merged.removed_after_add
                add_counters(receipt.counters, merged.counters)
                receipt.counters["total_devices"] += merged.devices
                for idx, n in merged.stored_lines.items():
                    non_blank[idx] += n
                work.execute("CREATE OR REPLACE TEMP VIEW raw_lines AS SELECT * FROM _chunk_lines")  # every line, for the reject rows
            reject_rows.collect_data(self._rejects, receipt.receipt_id, {i: c.path.name for i, c in live.items()}, plan, self.s,
                                     work)
            if merged is not None:
                for name in ("native_result", "_sql_lines", "_chunk_lines", *(f"_native_{n}" for n, _ in _native_stages(merged))):
                    work.unregister(name)

    def _native_merge(self, work: duckdb.DuckDBPyConnection, plan: DataPlan):
        """How the simple profiles of this file's chunks are merged natively, or None:
        `.sync` files whose user ID is the profile; key-value profiles when the data source
        has rules (engine/kv_profiles.py), else d_sid profiles of platform UUIDs
        (engine/simple_profiles.py)."""
        if not (self.s.engine.native_merge and simple_profiles.available()) or plan.odc or plan.overwrite:
            return None
        if plan.id_kind not in (ID_PLATFORM_UUID, ID_CROSS_DEVICE):
            return None
        book = self.rulebooks[plan.owner_dpid]
        lut = trait_status(work, plan, book)
        if lut is None:
            return None
        cap = plan.max_lines_per_user
        if book.eq_atoms or book.complex_rules:
            if book.key not in self._kv_rules:
                self._kv_rules[book.key] = kv_profiles.compile_rules(book, *lut)
            rules = self._kv_rules[book.key]
            if rules is None:
                return None
            uuids = plan.id_kind == ID_PLATFORM_UUID
            kind = kv_profiles.KIND_PLATFORM_UUID if uuids else kv_profiles.KIND_CUSTOMER_ID
            ns = 0 if uuids else int(plan.file_dpid)
            return partial(kv_profiles.merge_chunk, rules=rules, kind=kind, ns=ns, cap=cap, count_devices=uuids)
        if plan.id_kind != ID_PLATFORM_UUID:
            return None
        return partial(simple_profiles.merge_chunk, status=lut[0], lo=lut[1], cap=cap)

    @staticmethod
    def _merge_simple_profiles(work: duckdb.DuckDBPyConnection, merge, ready=None) -> simple_profiles.ChunkMerge:
        """Merge the chunk's simple profiles natively (``ready``: lines and merge done ahead);
        ``raw_lines`` becomes the chunk's other lines (for the SQL plan) and ``_chunk_lines``
        all of them."""
        if ready is not None:
            lines, merged = ready
        else:
            lines = work.sql(f"SELECT {raw_line_names()} FROM raw_lines").to_arrow_table()
            merged = merge(lines)
        work.register("_chunk_lines", lines)
        work.register("_sql_lines", simple_profiles.sql_lines(lines, merged))
        work.register("native_result", merged.no_trait)
        for name, table in _native_stages(merged):  # registered now: later the connection holds open results
            work.register(f"_native_{name}", table)
        work.execute("CREATE OR REPLACE TEMP VIEW raw_lines AS SELECT * FROM _sql_lines")
        return merged

    # -- ID-sync files -------------------------------------------------------------------------
    def _process_sync(self, parts: list[Candidate], receipt: Receipt) -> None:
        self._list_files(parts, receipt)
        name: SyncFileName = parts[0].name  # type: ignore[assignment]
        for c in parts:
            receipt.warnings.extend(w for w in c.warnings if w not in receipt.warnings)
        # Split parts of a sync file are independent (§2.3.3): each is its own unit.
        for part in parts:
            live = self._load_parts([part])
            if not live:
                continue
            classify_sync(self.con, dpids=name.dpids, c2c=name.prefix == "c2c_id_",
                          reject_email_like=self.s.identity.reject_email_like_ids)
            self._reject_empty(live, "sync_result")
            if not live:
                continue
            created, refreshed, evicted = apply_links(self.con, dpids=name.dpids, env=self.env, now=self.start,
                                                      c2c=name.prefix == "c2c_id_")
            add_counters(receipt.counters, _sync_counters(self.con))
            receipt.counters["links_created"] += created
            receipt.counters["links_refreshed"] += refreshed
            receipt.counters["links_evicted"] += evicted
            reject_rows.collect_sync(self._rejects, receipt.receipt_id, part.path.name, self.s)
        self._finish_listing(parts, receipt)

    # -- receipts and ledger ------------------------------------------------------------------
    @staticmethod
    def _list_files(parts: list[Candidate], receipt: Receipt) -> None:
        for c in parts:
            receipt.files.append(FileEntry(name=c.path.name, uri=c.uri, duplicate=c.duplicate))

    @staticmethod
    def _finish_listing(parts: list[Candidate], receipt: Receipt) -> None:
        by_uri = {f.uri: f for f in receipt.files}
        for c in parts:
            entry = by_uri[c.uri]
            if c.rejected:
                entry.status, entry.reason = "rejected", c.rejected

    def _persist(self, receipts: list[Receipt], cands: list[Candidate]) -> None:
        con = self.con
        for r in receipts:
            if reject_rows.count(con, r.receipt_id):
                # Written under .pending until COMMIT, so a crash leaves no orphan (published after).
                reject_rows.write_file(con, r.receipt_id, reject_files.pending_path(self.s.data_dir, self.job_id, r.receipt_id))
                r.rejects = reject_files.published_path(r.receipt_id)
        now = self.clock()
        con.execute("INSERT INTO jobs VALUES (?, ?, ?, ?)", [self.job_id, self.env, self.start, now])
        receipt_of = {f.uri: r.receipt_id for r in receipts for f in r.files}
        for c in cands:
            if c.duplicate:
                continue
            con.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.env, c.path.name, c.sha256 or "", c.uri, c.size, "rejected" if c.rejected else "applied",
                 c.rejected, self.job_id, receipt_of.get(c.uri), now],
            )
        for r in receipts:
            text = render_text(r, platform_name=self.s.platform.name)
            con.execute(
                "INSERT INTO receipts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [r.receipt_id, self.job_id, self.env, r.kind, r.partner, r.dpid, r.target_dpid, now, json.dumps(r.to_json()), text],
            )
        # Same transaction as the receipts: a committed receipt always has its mail queued (§6.1).
        notify.enqueue_receipts(con, self.s, receipts, now=now)



def _native_stages(merged: simple_profiles.ChunkMerge) -> tuple[tuple[str, pa.Table], ...]:
    """The staged relations (engine.apply) of a chunk's natively merged profiles."""
    return (("file_add_lists", merged.add_lists), ("file_adds", merged.adds),
            ("file_removes", merged.removes), ("file_first_removes", merged.first_removes))


def _remove_stale_scratch(scratch: Path, older_than_seconds: float = 3600) -> None:
    """Spooled lines and chunk files left by a job that crashed. Jobs of this process that
    are still running (`onramp serve` runs several side by side) keep theirs, however old;
    another process cannot be running a job on this store (DuckDB's file lock)."""
    import time

    if not scratch.is_dir():
        return
    cutoff = time.time() - older_than_seconds
    live = set(_LIVE_JOBS)
    for entry in scratch.iterdir():
        if (entry.is_dir() and entry.name.startswith(("spool-", "chunks-", "pieces-"))  # chunks-: older versions
                and entry.name.split("-", 1)[1] not in live and entry.stat().st_mtime < cutoff):
            shutil.rmtree(entry, ignore_errors=True)


def _data_counters(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    row = con.execute(
        """SELECT count(*) AS records_received,
                  count(*) FILTER (WHERE code IN (SELECT code FROM line_codes WHERE bucket = 'format_error')) AS format_errors,
                  count(*) FILTER (WHERE code = 'invalid_aam_id') AS invalid_aam_id,
                  count(*) FILTER (WHERE code = 'invalid_device_id') AS invalid_device_id,
                  count(*) FILTER (WHERE code = 'no_matching_id') AS no_matching_aam_id,
                  count(*) FILTER (WHERE code = 'no_trait') AS no_trait_realized,
                  count(*) FILTER (WHERE code <> 'discarded') AS records_processed,
                  count(*) FILTER (WHERE code = 'stored') AS stored_records,
                  coalesce(sum(n_items) FILTER (WHERE code IN ('stored', 'no_trait')), 0) AS total_signals,
                  coalesce(sum(n_unused) FILTER (WHERE code IN ('stored', 'no_trait')), 0) AS total_unused_signals,
                  coalesce(sum(n_realized) FILTER (WHERE code = 'stored'), 0) AS total_realized_traits,
                  coalesce(sum(n_failed), 0) AS total_traits_failed_validation,
                  count(*) FILTER (WHERE n_failed > 0) AS total_users_with_failed_validation
             FROM line_result"""
    ).fetchone()
    names = ["records_received", "format_errors", "invalid_aam_id", "invalid_device_id", "no_matching_aam_id",
             "no_trait_realized", "records_processed", "stored_records", "total_signals", "total_unused_signals",
             "total_realized_traits", "total_traits_failed_validation", "total_users_with_failed_validation"]
    return dict(zip(names, (int(v) for v in row)))


def _sync_counters(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    row = con.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE code IN (SELECT code FROM line_codes WHERE bucket = 'format_error')),
                  count(*) FILTER (WHERE code = 'invalid_aam_id'),
                  count(*) FILTER (WHERE code = 'invalid_device_id'),
                  count(*) FILTER (WHERE code = 'stored')
             FROM sync_result"""
    ).fetchone()
    return dict(zip(["records_received", "format_errors", "invalid_aam_id", "invalid_device_id", "rows_stored"], (int(v) for v in row)))


def receipt_text(settings: Settings, receipt: Receipt) -> str:
    return render_text(receipt, platform_name=settings.platform.name)
