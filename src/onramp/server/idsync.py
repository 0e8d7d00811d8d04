"""The ID-sync pixel (SPEC §2.1): ``GET /ibs:dpid=…&dpuuid=…`` and ``GET /ibs?…``.

A lean raw-ASGI route (no request object, no dependency injection): it is the hottest
path of the platform (DESIGN §5: ≥ 5,000 requests/s on one worker). Per call:

1. parse and validate (``formats.idsync_request``) → 400, nothing stored, no cookie (D-12);
2. consent (``gdpr=1``): a refusal behaves as opted out (§2.1.2 step 2);
3. the platform UUID from the sync cookie; ``NOTARGET`` = opted out, nothing stored;
   absent (or not a platform UUID) = a new one, set as the cookie (§1.3);
4. the link appended to the ID-sync log, answered only once that batch is on disk;
5. 302 to ``redir`` with ``${DD_UUID}`` substituted, or the 1×1 GIF.

The pixel never raises to the browser: unexpected errors become a plain 500/503.
The store is never held open: every ``http.idsync_load_seconds`` the loader process
(``server.loader_process``) moves the log into ``links`` and the known data sources are
re-read (ADR 0001).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timezone
from functools import partial
from pathlib import Path

import duckdb
from starlette.types import Receive, Scope, Send

from onramp.formats.idsync_request import (
    InvalidSyncRequest,
    SyncPolicy,
    check_sync_request,
    redirect_location,
    tcf_storage_consent,
)
from onramp.formats.ids import check_platform_uuid
from onramp.server import synclog
from onramp.server.loader_process import LoaderProcess
from onramp.server.metrics import IDSYNC_REQUESTS
from onramp.service.clock import Clock, system_clock
from onramp.settings import Settings

log = logging.getLogger("onramp.idsync")

OPT_OUT = "NOTARGET"  # §1.3
ENV = "prod"  # HTTP syncs feed the production identity graph; beta is file-based (§9.1)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1×1 transparent

ConsentEvaluator = Callable[[str], bool]
UuidFactory = Callable[[], str]

_COUNT = {code: IDSYNC_REQUESTS.labels(status=str(code)) for code in (200, 302, 400, 405, 500, 503)}
_NO_STORE = (b"cache-control", b"no-store, max-age=0")
_GIF_HEADERS = [(b"content-type", b"image/gif"), (b"content-length", str(len(GIF)).encode())]


_UUID_SPACE = 10**38
_UUID_LIMIT = 3 * _UUID_SPACE  # the largest multiple of 10**38 below 2**128


def new_platform_uuid() -> str:
    """A random 38-digit platform UUID, leading zeros allowed (§1.3).

    128 random bits, redrawn above ``_UUID_LIMIT`` so every UUID is equally likely; cheaper
    than ``secrets.randbelow``, which matters when every call comes from a new browser.
    """
    while True:
        n = int.from_bytes(os.urandom(16), "big")
        if n < _UUID_LIMIT:
            return f"{n % _UUID_SPACE:038d}"


def policy_from(settings: Settings, dpids: frozenset[int]) -> SyncPolicy:
    h = settings.http
    return SyncPolicy(
        known_dpids=dpids,
        reject_email_like=settings.identity.reject_email_like_ids,
        redirect_hosts=tuple(h.redirect_allow_hosts),
        redirect_hosts_by_dpid={int(k): tuple(v) for k, v in h.redirect_allow_hosts_by_dpid.items()},
    )


def store_cycle(settings: Settings, *, wait: bool, lock: threading.Lock | None = None) -> tuple[int, frozenset[int]] | None:
    """Open the store once: load the ID-sync log into ``links`` and read the data sources.

    Returns (records loaded, known DPIDs), or None when the store is busy and ``wait`` is
    false — the next cycle, or the next inbound job, loads the log instead. Busy means:
    another process holds it, another thread of this process is opening it, a concurrent
    transaction touched the same rows, or ``lock`` (shared with whoever runs jobs in this
    process, e.g. `onramp serve`) is taken.
    """
    if lock is not None and not lock.acquire(blocking=wait):
        return None
    try:
        deadline = time.monotonic() + (settings.engine.lock_wait_seconds if wait else 0)
        while True:
            try:
                return _cycle(settings, wait=wait)
            except duckdb.IOException:  # held by another process; connect() already waited
                if wait:
                    raise
                return None
            except (duckdb.TransactionException, _HandleConflict):
                if time.monotonic() >= deadline:
                    if wait:
                        raise
                    return None
                time.sleep(0.1)
    finally:
        if lock is not None:
            lock.release()


class _HandleConflict(Exception):
    """DuckDB refused to open the file while another thread of this process opens or closes it."""


def _cycle(settings: Settings, *, wait: bool) -> tuple[int, frozenset[int]]:
    from onramp.store.db import connect

    if not wait:
        settings = settings.model_copy(update={"engine": settings.engine.model_copy(update={"lock_wait_seconds": 0})})
    try:
        con = connect(settings)
    except duckdb.Error as exc:
        if "file handle conflict" in str(exc):
            raise _HandleConflict(str(exc)) from None
        raise
    try:
        loaded = synclog.load_committed(con, Path(settings.data_dir))
        dpids = frozenset(r[0] for r in con.execute("SELECT dpid FROM data_sources").fetchall())
        return loaded, dpids
    finally:
        con.close()


class IdSync:
    """State of the endpoint for one app: the log writer, the current policy, the loader."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock, new_uuid: UuidFactory = new_platform_uuid,
                 consent: ConsentEvaluator = tcf_storage_consent, store_lock: threading.Lock | None = None):
        self.settings = settings
        self.store_lock = store_lock
        self.clock = clock
        self.new_uuid = new_uuid
        self.consent = consent
        self.policy = policy_from(settings, frozenset())
        self._now_ms = _ms_clock(clock)
        self.log = synclog.SyncLog(Path(settings.data_dir), commit_ms=settings.http.idsync_commit_ms)
        self.loader = LoaderProcess(settings)
        h, ident = settings.http, settings.identity
        self.cookie_name = ident.cookie_name.encode()
        attrs = f"; Max-Age={ident.cookie_max_age_days * 86400}; Path=/; Secure; SameSite=None"
        if h.cookie_domain:
            attrs += f"; Domain={h.cookie_domain}"
        self.cookie_attrs = attrs.encode()

    # -- lifecycle --------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        self.log.open()
        try:
            await self.refresh(wait=True)  # leftovers of the previous run go to the store first
            await self.loader.start()
            loader = asyncio.create_task(self._load_forever())
            try:
                yield
            finally:
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
                await self.log.aclose()
            await self.refresh(wait=False)
        finally:
            self.log.close()
            await self.loader.stop()

    async def refresh(self, *, wait: bool, in_child: bool = False) -> None:
        """One store cycle, here or (``in_child``) in the loader process."""
        loop = asyncio.get_running_loop()
        lock = self.store_lock
        if lock is not None and not (await loop.run_in_executor(None, lock.acquire) if wait else lock.acquire(False)):
            return
        try:
            if in_child:
                result = await self.loader.load()
            else:
                result = await loop.run_in_executor(None, partial(store_cycle, self.settings, wait=wait))
        finally:
            if lock is not None:
                lock.release()
        if result is not None:
            loaded, dpids = result
            self.policy = policy_from(self.settings, dpids)
            if loaded:
                log.debug("loaded %d ID syncs into the store", loaded)

    async def _load_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.http.idsync_load_seconds)
            try:
                await self.refresh(wait=False, in_child=True)
            except Exception:  # keep serving; the log keeps every sync until a load succeeds
                log.exception("loading ID syncs into the store failed; retrying next cycle")

    # -- the endpoint -------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, headers, body = await self._answer(scope)
        except Exception:
            log.exception("ID-sync request failed")
            status, headers, body = 500, [(b"content-type", b"text/plain; charset=utf-8"), _NO_STORE], b"internal error\n"
        _COUNT[status].inc()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _answer(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if scope["method"] not in ("GET", "HEAD"):
            return _text(405, "only GET is supported", extra=[(b"allow", b"GET, HEAD")])
        raw_path = (scope.get("raw_path") or scope["path"].encode()).partition(b"?")[0]
        try:
            req = check_sync_request(raw_path, scope.get("query_string", b""), self.policy)
        except InvalidSyncRequest as exc:
            return _text(400, str(exc))
        cookie = _read_cookie(scope["headers"], self.cookie_name)
        refused = req.gdpr == 1 and not self.consent(req.gdpr_consent or "")
        headers: list[tuple[bytes, bytes]] = [_NO_STORE]
        if cookie == OPT_OUT or refused:
            uuid = ""  # opted out: nothing stored, no cookie, empty ${DD_UUID} (§2.1.2 step 3)
        else:
            uuid = cookie if cookie is not None and check_platform_uuid(cookie) else self.new_uuid()
            seen_ms = self._now_ms()
            try:
                await self.log.append(synclog.encode_record(seen_ms, ENV, req.dpid, uuid, req.dpuuid))
            except OSError:
                log.exception("ID-sync log write failed")
                return _text(503, "the sync could not be stored; try again", extra=[(b"retry-after", b"1")])
            if uuid != cookie:
                headers.append((b"set-cookie", b"%s=%s%s" % (self.cookie_name, uuid.encode(), self.cookie_attrs)))
        if req.redir is not None:
            headers += [(b"location", redirect_location(req.redir, uuid).encode()), (b"content-length", b"0")]
            return 302, headers, b""
        return 200, headers + _GIF_HEADERS, GIF


def _ms_clock(clock: Clock) -> Callable[[], int]:
    """Milliseconds since the epoch from ``clock``; the unpinned system clock takes a shortcut
    (it is read on every sync, and building a datetime costs a few microseconds)."""
    if clock is system_clock and not os.environ.get("ONRAMP_NOW"):
        return lambda: time.time_ns() // 1_000_000
    return lambda: int(clock().replace(tzinfo=timezone.utc).timestamp() * 1000)


def _read_cookie(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for part in value.split(b";"):
                k, _, v = part.strip().partition(b"=")
                if k == name:
                    return v.decode("latin-1")
    return None


def _text(status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None):
    body = (message + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()), _NO_STORE]
    return status, headers + (extra or []), body


def is_pixel_path(path: str) -> bool:
    """``/ibs``, ``/ibs/`` and ``/ibs:…`` (the decoded path; the endpoint re-reads the raw one)."""
    return path.startswith("/ibs:") or path in ("/ibs", "/ibs/")
