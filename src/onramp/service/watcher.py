"""The watcher (SPEC §3.10): drop zones → settled logical files → fair queue → jobs.

Each environment's drop zone (§9.1) is polled. Its objects are grouped into logical files
(all split parts of one base name, in one ``<partner>/date=…/`` folder). A logical file
is *settled* once it has been quiet for ``inbound.settle_seconds`` — no new part, no
size change — or at once when an `.info` control file listing its parts has seen them all
arrive. Settled files wait in the fair per-partner queue (``service.queue``); one job
runs per logical file, so a broken file fails alone. Jobs of different partners run side
by side, with a slot kept for small files (``service.turns`` has the store's side).
With a cron ``inbound.schedule`` the queue is filled only at the scheduled times.

After a job, each part moves to ``processed/`` or ``rejected/``, and the JSON receipt
(plus the reject file) is written back next to the upload. An in-flight journal makes
this crash-safe: a logical file whose job committed but whose parts were not moved yet
is finished from the ledger on restart — its stored receipt is put back, no second
job, no second receipt (see ``service.inflight``).

Grouping and settling are pure (``service.settle``); this module does the I/O.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from onramp.errors import FileRejected
from onramp.formats.info_file import InfoFile, InvalidInfoFile, is_info_name, parse_info
from onramp.service.clock import Clock, system_clock
from onramp.service.inflight import Inflight, uri_of
from onramp.service.queue import FairQueue
from onramp.service.settle import (
    LogicalFile,
    LogicalKey,
    SettleTracker,
    check_schedule,
    next_fire,
    signature,
)
from onramp.service.turns import StoreTurns
from onramp.transports.dropzone import DropObject, DropObjectChanged, DropZone

if TYPE_CHECKING:
    from onramp.service.ingest import JobResult

log = logging.getLogger("onramp.watcher")

# Downloads ahead of the jobs under way, at most one per partner lane. Fetching only has to
# stay ahead of the jobs: a machine with more cores runs more jobs at once and keeps more
# partners' downloads going. At least 2, so that a partner who just uploaded gets a download
# while a big file waits for its slot; at most 4, since each holds a scratch copy of an S3 object.
FETCH_WORKERS = min(4, max(2, os.cpu_count() or 1))
FAIR_WAIT_SECONDS = 1.0  # how long the fairest file's download is awaited (once) before another runs
MAIL_EVERY_SECONDS = 15.0  # retry cadence for receipt mail between jobs
PARTNERS_REFRESH_SECONDS = 10.0
SWEEP_EVERY_SECONDS = 3600.0
MAX_BACKOFF_SECONDS = 300.0


def job_slots(settings) -> int:
    """Jobs run at once: ``inbound.concurrent_jobs``, or one per core, at least 2 and at most 4
    (two, so that one partner's long job never holds up the others; DuckDB's memory limit is
    shared by all of them, so more jobs do not need more memory)."""
    n = settings.inbound.concurrent_jobs
    return n if n > 0 else min(4, max(2, os.cpu_count() or 1))


@dataclass
class _Fetched:
    lf: LogicalFile
    folder: Path
    paths: list[Path]
    # Parts the zone refused to give (S3 access denied, §3.1): no file at their path; the job
    # rejects them with this reason, so they get a receipt instead of being retried forever.
    unreadable: dict[Path, FileRejected] = field(default_factory=dict)


@dataclass
class _Running:
    lf: LogicalFile
    fetched: _Fetched
    future: Future[JobResult]
    big: bool  # over inbound.small_file_bytes: may not take the last free slot
    started: float


def open_store(settings, *, attempts: int = 50):
    """``store.db.connect``, retried while another thread of this process opens or closes the
    store: DuckDB then refuses with "Unique file handle conflict" instead of waiting."""
    import duckdb

    from onramp.store.db import connect

    for attempt in range(attempts):
        try:
            return connect(settings)
        except duckdb.Error as exc:
            if "file handle conflict" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


class PartnerFolders:
    """Partner folder name -> PID for the drop zones, re-read from the store at most every
    ``refresh`` seconds: partners added by `taxonomy apply` appear without a restart, and
    the store is not opened on every listing (ADR 0001)."""

    def __init__(self, settings, *, refresh: float = PARTNERS_REFRESH_SECONDS, wall: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.refresh = refresh
        self.wall = wall
        self._folders: dict[str, int] = {}
        self._at = float("-inf")

    def __call__(self) -> dict[str, int]:
        if self.wall() - self._at >= self.refresh:
            from onramp.transports.dropzone import partner_folders

            con = open_store(self.settings)
            try:
                self._folders = partner_folders(con)
            finally:
                con.close()
            self._at = self.wall()
        return self._folders


class Watcher:
    """Polls the drop zones and runs one job per settled logical file, fairly across partners.

    Jobs run side by side in ``job_slots`` threads, one per partner at a time; one slot is
    kept for small files (``inbound.small_file_bytes``), so a huge file never holds up other
    partners' everyday files. ``run(stop)`` loops until ``stop`` is set; ``step()`` is one
    iteration (tests drive it). ``wall`` is the real clock for settling and cron (it must
    agree with drop-zone times); ``clock`` is the job clock (``ONRAMP_NOW`` pins it in tests).
    """

    def __init__(self, settings, zones: Iterable[DropZone], *, clock: Clock = system_clock,
                 wall: Callable[[], float] = time.time, poll_seconds: float = 1.0, deliver_mail: bool = True,
                 turns: StoreTurns | None = None):
        self.settings = settings
        self.turns = turns or StoreTurns()
        self.zones = {z.env: z for z in zones}
        self.clock = clock
        self.wall = wall
        self.poll = poll_seconds
        self.deliver_mail = deliver_mail
        self.slots = job_slots(settings)
        self.big_slots = max(1, self.slots - 1)
        self.cron = check_schedule(settings.inbound.schedule)
        self.tracker = SettleTracker(settings.inbound.settle_seconds)
        self.queue: FairQueue[tuple[str, str], LogicalFile] = FairQueue()
        self.inflight = Inflight(settings, self.zones, open_store)
        self._infos: dict[str, tuple[tuple, InfoFile | InvalidInfoFile]] = {}
        self._failures: dict[LogicalKey, tuple[int, float]] = {}
        self._pool = ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="onramp-fetch")
        self._jobs = ThreadPoolExecutor(self.slots, thread_name_prefix="onramp-job")
        self._fetching: list[tuple[LogicalFile, Future[_Fetched]]] = []
        self._running: dict[LogicalKey, _Running] = {}
        self._lane_ran: dict[tuple[str, str], int] = {}  # lane -> when it last started a job (a sequence number)
        self._job_seq = itertools.count()
        self._awaited: set[LogicalKey] = set()  # fetches already waited for once (FAIR_WAIT_SECONDS)
        self._initial = True
        self._next_fire = next_fire(self.cron, self.wall()) if self.cron else None
        self._mail_at = float("-inf")
        self._mail_due = False
        self._swept_at = float("-inf")
        self._last_waiting = 0
        self._yielding = False  # holding new jobs back for a command waiting for the store
        self.jobs_run = 0

    # -- loop --------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step(stop, wait_for_jobs=False)
        finally:
            self.close()

    def step(self, stop: threading.Event | None = None, *, wait_for_jobs: bool = True) -> int:
        """Recover, scan, start jobs in the free slots, finish those that ended; returns how
        many ended.

        With ``wait_for_jobs`` (tests, ``drain``) it returns once the jobs under way have
        ended, so a step is one round of jobs. The service loop passes False and comes back
        within a poll, so new uploads are seen and start while a long job runs.
        """
        self.inflight.recover_all(running=self._running)
        self.scan()
        self._fill_fetches()
        started = self._start_jobs(stop, timeout=self.poll if self._fetching and not self._running else 0)
        if wait_for_jobs:
            wait([r.future for r in self._running.values()])
        elif not started:
            pending = [r.future for r in self._running.values()] + [fut for _, fut in self._fetching if not fut.done()]
            if pending:
                wait(pending, timeout=self.poll, return_when=FIRST_COMPLETED)
            elif stop is not None:
                stop.wait(self.poll)
        finished = self._finish_jobs()
        if started or finished:
            self._fill_fetches()
        self._deliver_mail()
        self._sweep()
        return finished

    def drain(self, timeout: float = 60.0) -> None:
        """Step until nothing is queued, fetching, running or waiting to settle (tests, `onramp demo`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.step():
                continue
            if (not self.queue and not self._fetching and not self._running and not self.inflight.pending()
                    and self._last_waiting == 0):
                return
            time.sleep(min(self.poll, 0.2))
        raise TimeoutError("the drop zones did not drain in time")

    def close(self) -> None:
        """Stop fetching; the jobs under way finish (a job is never interrupted) and are answered."""
        for _, fut in self._fetching:
            fut.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._jobs.shutdown(wait=True)
        self._finish_jobs()

    # -- scanning ----------------------------------------------------------------------------
    def scan(self) -> None:
        now = self.wall()
        fire = self.cron is None or now >= (self._next_fire or 0)
        waiting = 0
        for env, zone in self.zones.items():
            try:
                objects = list(zone.list_objects())
            except Exception as exc:  # noqa: BLE001 - a zone that cannot be listed must not stop the others
                log.error("%s drop zone: cannot list objects: %s", env, exc)
                continue
            seen = self.tracker.observe(env, objects, self._read_infos(zone, objects), now, initial=self._initial)
            waiting += seen.waiting
            for info, reason in seen.stray_infos:
                self._finish_stray(zone, info, reason)
            for lf in seen.ready:
                if fire:
                    self._enqueue(lf, now)
        self._initial = False
        self._last_waiting = waiting
        if self.cron and fire:
            self._next_fire = next_fire(self.cron, now)
            log.info("scheduled inbound run done; next at %s UTC",
                     datetime.fromtimestamp(self._next_fire, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"))
        self._update_depth()

    def _enqueue(self, lf: LogicalFile, now: float) -> None:
        if self.inflight.has(lf.key):
            return  # a committed job is being finished from the ledger, never run again
        if self.inflight.left_in_place(lf):
            return  # reported already, but the platform may not even move it (Inflight.finish)
        failed = self._failures.get(lf.key)
        if failed and now < failed[1]:
            return
        if self.queue.push(lf.lane, lf.key, lf, lf.order()):
            log.info("%s: %s/date=%s/%s settled (%d part%s)", lf.env, lf.partner, lf.date, lf.base,
                     len(lf.parts), "" if len(lf.parts) == 1 else "s")

    def _read_infos(self, zone: DropZone, objects: list[DropObject]) -> dict[str, InfoFile | InvalidInfoFile]:
        """Parse each `.info` object once per version (it is small; the zone fetches it)."""
        out: dict[str, InfoFile | InvalidInfoFile] = {}
        for obj in objects:
            if not is_info_name(obj.name):
                continue
            sig = (obj.size, obj.mtime, obj.etag)
            cached = self._infos.get(obj.key)
            if cached is None or cached[0] != sig:
                folder = self._scratch()
                try:
                    data = zone.fetch(obj, folder).read_bytes()
                    parsed: InfoFile | InvalidInfoFile = parse_info(data, where=obj.name)
                except InvalidInfoFile as exc:
                    parsed = exc
                except Exception as exc:  # noqa: BLE001 - vanished or unreadable: try again next scan
                    log.warning("%s: cannot read %s: %s", zone.env, obj.key, exc)
                    continue
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                cached = self._infos[obj.key] = (sig, parsed)
            out[obj.key] = cached[1]
        return out

    def _finish_stray(self, zone: DropZone, info: DropObject, reason: str | None) -> None:
        try:
            zone.finish(info, "processed" if reason is None else "rejected")
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: cannot move %s: %s", zone.env, info.key, exc)
            return
        self._infos.pop(info.key, None)
        if reason is None:
            log.info("%s: %s lists no part still waiting; moved to processed/", zone.env, info.key)
        else:
            log.warning("%s: %s moved to rejected/: %s", zone.env, info.key, reason)

    # -- fetching and running -------------------------------------------------------------------
    def _fill_fetches(self) -> None:
        """Download ahead: one file per lane, ``FETCH_WORKERS`` lanes whose partner has no job
        under way, and at most one big file that way (it may have to wait for a big slot)."""
        while True:
            busy = self._running_lanes()
            ahead = [lf for lf, _ in self._fetching if lf.lane not in busy]
            if len(ahead) >= FETCH_WORKERS:
                break
            big_ahead = any(self._is_big(lf) for lf in ahead)
            popped = self.queue.pop(skip={lf.lane for lf, _ in self._fetching},
                                    accept=(lambda lf: not self._is_big(lf)) if big_ahead else None)
            if popped is None:
                break
            lf = popped[2]
            if self.tracker.current(lf.key) != signature(lf.parts):
                self.queue.release(lf.key)  # changed since it settled: let it settle again
                continue
            self._fetching.append((lf, self._pool.submit(self._fetch, lf)))
        self._update_depth()

    def _fetch(self, lf: LogicalFile) -> _Fetched:
        zone = self.zones[lf.env]
        folder = self._scratch()
        paths = []
        unreadable: dict[Path, FileRejected] = {}
        for obj in lf.parts:
            try:
                path = zone.fetch(obj, folder)
            except FileRejected as exc:
                # Permanent (the partner must upload again with the right ACL): a rejected
                # file with a receipt. Transient errors (5xx, connection) propagate: retried.
                path = folder / obj.name
                unreadable[path] = exc
            if path.name != obj.name:  # the ledger knows a file by its name (§3.2)
                target = folder / obj.name
                shutil.copyfile(path, target)
                path = target
            paths.append(path)
        return _Fetched(lf, folder, paths, unreadable)

    def _is_big(self, lf: LogicalFile) -> bool:
        return sum(p.size for p in lf.parts) > self.settings.inbound.small_file_bytes

    def _running_lanes(self) -> set[tuple[str, str]]:
        return {r.lf.lane for r in self._running.values()}

    def _may_start(self, lf: LogicalFile) -> bool:
        """A partner runs one job at a time (its files' order matters, SPEC §3.8.4); big files
        leave one slot free for small ones."""
        if lf.lane in self._running_lanes():
            return False
        return not self._is_big(lf) or sum(r.big for r in self._running.values()) < self.big_slots

    def _start_jobs(self, stop: threading.Event | None, timeout: float) -> int:
        """Start jobs in the free slots, fairest lane first; returns how many started.

        None while a command of another process waits for the store (`onramp receipts`
        during a backlog): the jobs under way end, the store closes, the command runs,
        then jobs go on (ADR 0001)."""
        from onramp.store.db import waiting_for_store

        if waiting_for_store(self.settings.data_dir):
            if not self._yielding:
                log.info("a command is waiting for the store: new jobs start once it has had its turn")
                self._yielding = True
            return 0
        self._yielding = False
        started = 0
        while len(self._running) < self.slots and not (stop and stop.is_set()):
            entry = self._take_fetched(timeout if started == 0 else 0)
            if entry is None:
                break
            started += self._start(*entry)
        return started

    def _take_fetched(self, timeout: float) -> tuple[LogicalFile, Future[_Fetched]] | None:
        """The fetched file that may start, of the lane that ran a job least recently.

        When another one is ready first, the fairest one's download is awaited once, for up
        to ``FAIR_WAIT_SECONDS``; if it is still under way then, the fairest finished one
        starts instead: a slow download never holds up one that is done for long.
        """
        ranked = sorted((e for e in self._fetching if self._may_start(e[0])),
                        key=lambda entry: self._lane_ran.get(entry[0].lane, -1))
        if not ranked:
            return None
        if timeout > 0 and not any(fut.done() for _, fut in ranked):
            wait([fut for _, fut in ranked], timeout=timeout, return_when=FIRST_COMPLETED)
        fairest_lf, fairest = ranked[0]
        if not fairest.done() and fairest_lf.key not in self._awaited and any(fut.done() for _, fut in ranked):
            self._awaited.add(fairest_lf.key)
            wait([fairest], timeout=FAIR_WAIT_SECONDS)
        for entry in ranked:
            if entry[1].done():
                self._fetching = [e for e in self._fetching if e is not entry]
                self._awaited.discard(entry[0].key)
                self._lane_ran[entry[0].lane] = next(self._job_seq)
                return entry
        return None

    def _start(self, lf: LogicalFile, fut: Future[_Fetched]) -> bool:
        try:
            fetched = fut.result()
        except DropObjectChanged:
            self.queue.release(lf.key)  # replaced or deleted since it settled: it settles again
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. S3 unreachable or 5xx; retried with a growing delay
            self._failed(lf, f"cannot fetch: {exc}")
            return False
        try:
            self.inflight.begin(lf)  # durably, before the job can commit
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: nothing ran, try again later
            shutil.rmtree(fetched.folder, ignore_errors=True)
            self._failed(lf, f"cannot record the job in {self.inflight.root}: {exc}")
            return False
        future = self._jobs.submit(self._job, lf, fetched)
        self._running[lf.key] = _Running(lf, fetched, future, self._is_big(lf), time.monotonic())
        log.info("%s: %s/date=%s/%s started (%s file; %d of %d jobs running)", lf.env, lf.partner, lf.date, lf.base,
                 "big" if self._is_big(lf) else "small", len(self._running), self.slots)
        return True

    def _job(self, lf: LogicalFile, fetched: _Fetched) -> JobResult:
        """One logical file's job, in a job thread, next to other partners' jobs; one that
        meets another job's write (a data source both may write) runs again alone."""
        from onramp.service.ingest import run_job
        from onramp.store.db import is_write_conflict

        pid = lf.parts[0].pid  # the partner folder names the uploader (§3.1)
        uris = {p: uri_of(o) for p, o in zip(fetched.paths, lf.parts, strict=True)}

        def attempt() -> JobResult:
            con = open_store(self.settings)
            try:
                return run_job(self.settings, fetched.paths, partner=pid, env=lf.env, clock=self.clock, uris=uris, con=con,
                               unreadable=fetched.unreadable)
            finally:
                con.close()

        try:
            with self.turns.shared():
                return attempt()
        except Exception as exc:
            if not is_write_conflict(exc):
                raise
            log.info("%s: %s/%s changes rows another job was changing; running it again alone (%s)",
                     lf.env, lf.partner, lf.base, exc)
        with self.turns:
            return attempt()

    def _finish_jobs(self) -> int:
        """Receipts back, parts moved, for each job that ended; returns how many ended."""
        done = [r for r in self._running.values() if r.future.done()]
        for r in done:
            del self._running[r.lf.key]
            shutil.rmtree(r.fetched.folder, ignore_errors=True)
            self._finish(r)
        return len(done)

    def _finish(self, job: _Running) -> None:
        from onramp.server import metrics

        lf = job.lf
        try:
            result = job.future.result()
        except Exception as exc:  # the job rolled back (or committed just before failing):
            # the in-flight journal decides which, from the ledger, before anything runs again.
            log.error("%s: job for %s/%s failed", lf.env, lf.partner, lf.base, exc_info=exc)
            self._failed(lf, str(exc))
            return
        metrics.record_job(lf.env, result.receipts, time.monotonic() - job.started)
        self.jobs_run += 1
        self._failures.pop(lf.key, None)
        self._mail_due = True
        try:
            self.inflight.finish(lf, [r.to_json() for r in result.receipts])
        except Exception as exc:  # noqa: BLE001 - committed: finished later from the ledger, never rerun
            log.warning("%s: %s/%s processed, but moving it failed (%s); retrying from the ledger", lf.env, lf.partner, lf.base, exc)
        finally:
            self.queue.release(lf.key)
        accepted = sum(f.status == "accepted" for r in result.receipts for f in r.files)
        log.info("%s: %s/date=%s/%s done: %d file(s) accepted, %d rejected (job %s)", lf.env, lf.partner, lf.date,
                 lf.base, accepted, sum(len(r.files) for r in result.receipts) - accepted, result.job_id)

    def _failed(self, lf: LogicalFile, reason: str) -> None:
        attempts = self._failures.get(lf.key, (0, 0.0))[0] + 1
        delay = min(MAX_BACKOFF_SECONDS, self.poll * 2 ** attempts)
        self._failures[lf.key] = (attempts, self.wall() + delay)
        self.queue.release(lf.key)
        log.warning("%s: %s/%s not processed (attempt %d): %s; next try in %.0f s", lf.env, lf.partner, lf.base,
                    attempts, reason, delay)

    def _deliver_mail(self) -> None:
        if not self.deliver_mail:
            return
        now = self.wall()
        if not (self._mail_due or now - self._mail_at >= MAIL_EVERY_SECONDS):
            return
        self._mail_at, self._mail_due = now, False
        try:
            from onramp.service.notify import deliver_pending

            deliver_pending(self.settings, clock=self.clock)
        except Exception as exc:  # noqa: BLE001 - mail stays queued in the store and is retried
            log.warning("receipt mail delivery failed: %s; retrying in %.0f s", exc, MAIL_EVERY_SECONDS)

    def _sweep(self) -> None:
        """Archived uploads are kept ``inbound.s3_retention_days`` for inspection (§3.1), then deleted."""
        now = self.wall()
        if now - self._swept_at < SWEEP_EVERY_SECONDS:
            return
        self._swept_at = now
        cutoff = datetime.fromtimestamp(now, tz=UTC) - timedelta(days=self.settings.inbound.s3_retention_days)
        for env, zone in self.zones.items():
            try:
                removed = zone.sweep(cutoff)
            except Exception as exc:  # noqa: BLE001 - retention is housekeeping; try again next hour
                log.warning("%s drop zone: retention sweep failed: %s", env, exc)
                continue
            if removed:
                log.info("%s drop zone: deleted %d archived file(s) older than %d days", env, len(removed),
                         self.settings.inbound.s3_retention_days)

    def _scratch(self) -> Path:
        folder = Path(self.settings.data_dir) / "tmp" / "fetch" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def _update_depth(self) -> None:
        from onramp.server import metrics

        queued = self.queue.queued_keys()
        for env in self.zones:
            metrics.QUEUE_DEPTH.labels(env).set(sum(1 for k in queued if k[0] == env))
