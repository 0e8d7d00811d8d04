"""The file ledger (one row per processing of a file version) and reprocessing."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from fastapi import APIRouter, Query, Request

from onramp.intake.containers import sha256_file
from onramp.server.api.deps import STORE_WAIT_SECONDS, AdminUser, ApiError, ApiUser, StoreSession, not_found, settings_of
from onramp.server.api.models import (
    BadRequestBody,
    Env,
    ErrorBody,
    FileRecord,
    NotFoundBody,
    ReprocessRequest,
    ReprocessResult,
)
from onramp.server.api.tenancy import receipt_scope
from onramp.server.metrics import record_job
from onramp.service.ingest import run_job
from onramp.settings import Settings
from onramp.transports.layout import ARCHIVES, archive_key

router = APIRouter(tags=["files"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})

JOB_WAIT_SECONDS = STORE_WAIT_SECONDS
_COLUMNS = ("env", "name", "sha256", "uri", "size", "status", "reason", "job_id", "receipt_id", "processed_at")


@router.get("/files", response_model=list[FileRecord], summary="The file ledger, newest first")
def list_files(
    who: ApiUser,
    session: StoreSession,
    env: Env | None = None,
    status: str | None = Query(None, description="applied | rejected"),
    name: str | None = Query(None, description="Exact file name."),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
) -> list[dict]:
    scope, params = receipt_scope(who)
    # A file is a partner's when its receipt is: admins also see files without a receipt.
    where = ["true" if who.is_admin else scope]
    for column, value in (("env", env), ("status", status), ("name", name)):
        if value is not None:
            where.append(f"f.{column} = ?")
            params.append(value)
    rows = session.con.execute(
        f"""SELECT {', '.join('f.' + c for c in _COLUMNS)} FROM files f LEFT JOIN receipts r ON r.receipt_id = f.receipt_id
             WHERE {' AND '.join(where)} ORDER BY f.processed_at DESC, f.name LIMIT ? OFFSET ?""",
        [*params, limit, offset],
    ).fetchall()
    return [dict(zip(_COLUMNS, r)) for r in rows]


def local_path(uri: str) -> Path | None:
    """The local path of a ``file://`` ledger URI; None for other schemes (S3 and the like)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parsed.path))


def candidates(path: Path) -> list[Path]:
    """Where a processed local file may be now: where it was dropped, or, for a drop-zone
    key ``<partner>/date=YYYY-MM-DD/<name>``, where the service archived it (§3.1)."""
    found = [path]
    if len(path.parts) > 3 and path.parent.name.startswith("date="):
        root, key = path.parents[2], "/".join(path.parts[-3:])
        found += [root / archive_key(outcome, key) for outcome in ARCHIVES]
    return found


def _locate(uri: str, sha256: str, name: str, *, settings: Settings, env: str, scratch: Path) -> Path:
    """The file version behind ledger URI ``uri``: a local path, or an S3 object (still in
    the drop zone or archived) downloaded into ``scratch``."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        present = _download(parsed.netloc, parsed.path.lstrip("/"), name, settings=settings, env=env, scratch=scratch)
    else:
        path = local_path(uri)
        if path is None:
            raise ApiError(409, f"only local and s3:// files can be reprocessed here, not {parsed.scheme}:// ones",
                           "copy the file locally and run `onramp ingest --reprocess FILE`")
        present = [p for p in candidates(path) if p.is_file()]
    if not present:
        raise ApiError(409, f"{name} is no longer at {uri} nor in processed/ or rejected/",
                       "restore it there or run `onramp ingest --reprocess FILE`")
    for p in present:
        # Same name, other content: processing it would not be a *re*process.
        if not sha256 or sha256_file(p) == sha256:
            return p
    raise ApiError(409, f"{name} has changed since it was processed", "drop it again as a new file version")


def _download(bucket: str, key: str, name: str, *, settings: Settings, env: str, scratch: Path) -> list[Path]:
    from onramp.transports.s3 import S3DropZone

    if settings.dropzone.kind != "s3":
        raise ApiError(409, f"{name} came from S3 but this service's drop zone is {settings.dropzone.kind!r}",
                       "reprocess it where dropzone.kind = 's3', or copy it locally and run `onramp ingest --reprocess FILE`")
    zone = S3DropZone.from_settings(settings, env, {})
    if zone.bucket != bucket:
        raise ApiError(409, f"{name} is in bucket {bucket!r}, not in the {env} drop zone's bucket {zone.bucket!r}",
                       "copy it locally and run `onramp ingest --reprocess FILE`")
    return zone.download_handled(key, scratch)


@router.post(
    "/files/reprocess",
    response_model=ReprocessResult,
    summary="Process a file version again (admin)",
    description="Runs a job now, as `onramp ingest --reprocess` would, for a file still at its ledger "
    "location or archived by the service under `processed/` or `rejected/` — a local file, or an object "
    "of this environment's S3 drop zone.",
    responses={400: {"model": BadRequestBody}, 404: {"model": NotFoundBody}, 409: {"model": ErrorBody}},
)
def reprocess(body: ReprocessRequest, request: Request, _: AdminUser,
              session: StoreSession) -> dict:
    sql = """SELECT f.uri, f.sha256, r.partner FROM files f LEFT JOIN receipts r ON r.receipt_id = f.receipt_id
              WHERE f.env = ? AND f.name = ?"""
    params: list = [body.env, body.name]
    if body.sha256:
        sql += " AND f.sha256 = ?"
        params.append(body.sha256)
    row = session.con.execute(sql + " ORDER BY f.processed_at DESC LIMIT 1", params).fetchone()
    if row is None:
        raise not_found(f"file {body.name!r} in {body.env}", "see GET /api/v1/files for ledger names and versions")
    uri, sha256, partner = row
    settings = settings_of(request)
    scratch = Path(settings.data_dir) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reprocess-", dir=scratch) as tmp:
        path = _locate(uri, sha256, body.name, settings=settings, env=body.env, scratch=Path(tmp))
        with _job_turn(request):
            started = time.monotonic()
            result = run_job(settings, [path], partner=partner, env=body.env, reprocess=True, uris={path: uri}, con=session.con)
    record_job(body.env, result.receipts, time.monotonic() - started)
    return {"job_id": result.job_id, "receipts": [r.to_json() for r in result.receipts]}


@contextlib.contextmanager
def _job_turn(request: Request) -> Iterator[None]:
    """Take the in-process jobs' turn (`onramp serve`: the watcher's ``store_lock``), so a
    reprocess never runs alongside a watcher job on the same rows. Like a store held by
    another process (``deps.Store``), a job still running after ``JOB_WAIT_SECONDS`` is a 503."""
    lock = getattr(request.app.state, "store_lock", None)
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=JOB_WAIT_SECONDS):
        raise ApiError(503, "an inbound job is running", "retry in a few seconds", {"Retry-After": "5"})
    try:
        yield
    finally:
        lock.release()
