"""The in-flight journal: crash safety between a job's COMMIT and moving its files (DESIGN §4).

A job commits profiles, ledger rows, the receipt and its queued mail in one transaction
(``service.ingest``). Moving the parts to ``processed/``/``rejected/`` and writing the
receipt back next to the upload happen after it, outside the store, so a ``kill -9``
can fall in between. Rerunning the file then would only produce a second, "duplicate"
receipt — and a second mail.

So before each job the watcher writes an entry under ``<data_dir>/inflight/`` naming the
logical file's objects, and deletes it once they are moved. An entry found later (after
a crash, or a failed move) is settled from the ledger, never by running the job again:
if every part's version (name, SHA-256, URI) is in the ledger, the job committed and its
stored receipt is put back and the parts moved; otherwise nothing committed, the entry is
dropped and the file is processed normally.

Limit: a partner re-uploading a byte-identical file to the same key while the service
crashes during its job gets the earlier receipt put back instead of a "duplicate" one.
The same holds for an object the platform may not read (SPEC §3.1), whose versions the
ledger tells apart by name and URI only; such an object, which cannot be archived either,
is left in place after its receipt and skipped while unchanged (``left_in_place``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Container, Mapping
from dataclasses import asdict
from pathlib import Path

import duckdb

from onramp.errors import FileRejected
from onramp.service.settle import LogicalFile, LogicalKey
from onramp.settings import Settings
from onramp.store.files import write_durably
from onramp.transports.dropzone import DropObject, DropZone
from onramp.transports.layout import put_back_name

log = logging.getLogger("onramp.watcher")

RETRY_SECONDS = 5.0


def uri_of(obj: DropObject) -> str:
    """How receipts and the ledger name an object (§6.2 full URI; the key if a zone gives none)."""
    return obj.uri or obj.key


def put_back_names(base: str, receipts: list[dict]) -> list[str]:
    """Name stems for a logical file's receipts: ``<base>`` for the usual single receipt."""
    if len(receipts) == 1:
        return [base]
    return [f"{base}.{r['receipt_id']}" for r in receipts]


class Inflight:
    """Journal entries of logical files whose job may have committed but whose parts are not moved."""

    def __init__(self, settings: Settings, zones: Mapping[str, DropZone],
                 connect: Callable[[Settings], duckdb.DuckDBPyConnection]):
        self.settings = settings
        self.zones = zones
        self.connect = connect
        self.root = Path(settings.data_dir) / "inflight"
        self.root.mkdir(parents=True, exist_ok=True)
        self._entries: dict[tuple, Path] = {}
        self._retry_at: dict[Path, float] = {}
        self._left: set[DropObject] = set()
        for path in sorted(self.root.glob("*.json")):
            try:
                self._entries[_key(json.loads(path.read_text()))] = path
            except (OSError, ValueError, KeyError) as exc:
                log.error("unreadable in-flight entry %s (%s); remove it after checking its files", path, exc)

    def has(self, key: LogicalKey) -> bool:
        return key in self._entries

    def left_in_place(self, lf: LogicalFile) -> bool:
        """Whether every part of ``lf`` is an unmovable object that already has its receipt.

        Kept in memory only: after a restart such an object is reported once more (one more
        receipt). A changed object (a new upload: new ETag or time) is a new upload anyway.
        """
        return all(p in self._left for p in lf.parts)

    def pending(self) -> bool:
        return bool(self._entries)

    def begin(self, lf: LogicalFile) -> None:
        """Record the objects of a job about to run (durably: the job may commit right after)."""
        body = {"env": lf.env, "partner": lf.partner, "date": lf.date, "base": lf.base,
                "parts": [asdict(o) for o in lf.parts], "info": asdict(lf.info) if lf.info else None}
        name = hashlib.sha256(repr(lf.key).encode()).hexdigest()[:32] + ".json"
        path = self.root / name
        write_durably(path, json.dumps(body).encode())
        self._entries[lf.key] = path

    def finish(self, lf: LogicalFile, receipts: list[dict], *, present: set[str] | None = None,
               fallback: Mapping[str, str] | None = None) -> None:
        """Write the receipts back next to the upload, move the parts, drop the entry.

        Idempotent: receipts are overwritten with the same bytes; only parts still
        ``present`` (keys; ``None`` = all) are moved. ``fallback`` gives the status (by URI)
        of parts no receipt lists.
        """
        zone = self.zones[lf.env]
        data_dir = Path(self.settings.data_dir)
        for r, stem in zip(receipts, put_back_names(lf.base, receipts), strict=True):
            zone.put_back(lf.partner, lf.date, put_back_name(stem, "receipt"), (json.dumps(r, indent=2) + "\n").encode())
            if r.get("rejects"):
                rejects = data_dir / r["rejects"]
                if rejects.is_file():
                    zone.put_back(lf.partner, lf.date, put_back_name(stem, "rejects"), rejects.read_bytes())
                else:
                    log.warning("reject file %s of receipt %s is missing", rejects, r.get("receipt_id"))
        status = {**(fallback or {}), **{f["uri"]: f["status"] for r in receipts for f in r.get("files", [])}}
        for obj in lf.parts:
            if present is not None and obj.key not in present:
                continue
            outcome = status.get(uri_of(obj))
            if outcome is None:
                log.warning("%s: %s is in no receipt; left in place", lf.env, obj.key)
                continue
            try:
                zone.finish(obj, "rejected" if outcome == "rejected" else "processed")
            except FileRejected as exc:
                # The platform may not read it, so it cannot copy it to rejected/ either. Its
                # receipt is out; retrying the move would fail forever, so it stays where it is
                # and is not processed again while it is unchanged (``left_in_place``).
                self._left.add(obj)
                log.error("%s: %s was reported as a rejected file but cannot be archived (%s); it stays in place "
                          "and is skipped until it changes — delete it, or have the partner upload it again with "
                          "--acl bucket-owner-full-control", lf.env, obj.key, exc.message)
        if lf.info is not None and (present is None or lf.info.key in present):
            zone.finish(lf.info, "processed")
        self._drop(lf.key)

    def recover_all(self, running: Container[LogicalKey] = ()) -> None:
        """Settle every entry left by a crash, a failed job or a failed move (errors: retried
        later); entries of jobs still ``running`` are theirs to finish."""
        now = time.monotonic()
        for key, path in list(self._entries.items()):
            if key in running or self._retry_at.get(path, 0.0) > now:
                continue
            try:
                self._recover(key, json.loads(path.read_text()))
            except Exception as exc:  # noqa: BLE001 - keep the entry: the file must not run again meanwhile
                self._retry_at[path] = now + RETRY_SECONDS
                log.warning("in-flight %s/%s: cannot settle yet (%s); retrying", key[1], key[3], exc)

    def _recover(self, key: tuple, body: dict) -> None:
        zone = self.zones.get(body["env"])
        if zone is None:
            raise RuntimeError(f"environment {body['env']!r} has no drop zone in this configuration")
        present = {o.key: o for o in zone.list_objects()}
        parts = tuple(DropObject(**p) for p in body["parts"])
        info = DropObject(**body["info"]) if body.get("info") else None
        lf = LogicalFile(body["env"], body["partner"], body["date"], body["base"], parts, info)
        same = [p for p in parts if present.get(p.key) == p]  # replaced objects are new uploads
        if not same:
            if info is not None and info.key in present:
                zone.finish(info, "processed")
            self._drop(key)
            return
        receipts, statuses = self._committed(zone, same)
        if receipts is None:
            log.info("%s: %s/%s: its job did not commit; it will be processed again", lf.env, lf.partner, lf.base)
            self._drop(key)
            return
        self.finish(lf, receipts, present=set(present), fallback=statuses)
        log.info("%s: %s/%s: its job had committed; receipt put back and files moved", lf.env, lf.partner, lf.base)

    def _committed(self, zone: DropZone, parts: list[DropObject]) -> tuple[list[dict] | None, dict[str, str]]:
        """The newest receipt of these part versions if every one is in the ledger, else None."""
        from onramp.intake.containers import sha256_file
        from onramp.service import reject_files

        folder = Path(self.settings.data_dir) / "tmp" / "fetch" / uuid.uuid4().hex
        folder.mkdir(parents=True)

        def content_hash(part: DropObject) -> str:
            try:
                return sha256_file(zone.fetch(part, folder))
            except FileRejected:
                # Unreadable: its job recorded it without a hash (as a rejected file, §3.1).
                # Only its name and URI tell its versions apart, so an older unreadable
                # version of the same key counts as this one (the module docstring's limit).
                return ""

        try:
            hashes = [(p, content_hash(p)) for p in parts]
            con = self.connect(self.settings)
            try:
                reject_files.recover(self.settings.data_dir, con)  # publish reject files of a crashed commit
                rows = [
                    con.execute(
                        """SELECT status, receipt_id, processed_at FROM files
                            WHERE env = ? AND name = ? AND sha256 = ? AND uri = ?
                            ORDER BY processed_at DESC LIMIT 1""",
                        [zone.env, p.name, sha, uri_of(p)],
                    ).fetchone()
                    for p, sha in hashes
                ]
                if not all(rows):
                    return None, {}
                newest = max(rows, key=lambda r: r[2])[1]
                body = con.execute("SELECT body FROM receipts WHERE receipt_id = ?", [newest]).fetchone()
            finally:
                con.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        statuses = {uri_of(p): "rejected" if row[0] == "rejected" else "accepted" for (p, _), row in zip(hashes, rows, strict=True)}
        return ([json.loads(body[0])] if body else []), statuses

    def _drop(self, key: tuple) -> None:
        path = self._entries.pop(key, None)
        if path is not None:
            path.unlink(missing_ok=True)
            self._retry_at.pop(path, None)


def _key(body: dict) -> tuple:
    return (body["env"], body["partner"], body["date"], body["base"])
