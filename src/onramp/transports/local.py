"""A drop zone in a local directory: the embedded default (SPEC §3.1, §9.1).

``<root>/<partner>/date=YYYY-MM-DD/<file>``, the S3 layout on disk. The FTP and SFTP
servers use ``<root>/<partner>/`` as the partner's home, so their uploads land here.
Handled files move to ``<root>/processed/…`` or ``<root>/rejected/…`` with the same
relative path; receipts are written back next to the upload.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

from onramp.transports.dropzone import (
    DropObject,
    DropObjectChanged,
    IgnoreLog,
    Outcome,
    PartnerFolders,
    log,
    resolve_partners,
)
from onramp.transports.layout import ARCHIVES, Ignored, archive_key, parse_key, put_back_key

_MAX_DEPTH = 3  # partner / date= / file


class LocalDropZone:
    """Uploads under ``root`` for one environment."""

    def __init__(self, root: Path, env: str, partners: PartnerFolders, *, clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.env = env
        self._partners = partners
        self._clock = clock
        self._ignore = IgnoreLog(env)
        self.root.mkdir(parents=True, exist_ok=True)

    def list_objects(self) -> list[DropObject]:
        known = resolve_partners(self._partners)
        found = []
        for rel, st in self._walk(known):
            place = parse_key(rel)
            if isinstance(place, Ignored):
                self._ignore(rel, place)
                continue
            path = self.root / rel
            found.append(DropObject(
                partner=place.partner, date=place.date, name=place.name, key=rel, size=st.st_size,
                mtime=st.st_mtime, pid=known[place.partner], uri=path.absolute().as_uri(),
            ))
        return sorted(found, key=lambda o: o.key)

    def fetch(self, obj: DropObject, dest_dir: Path) -> Path:
        """The upload itself: no copy on a local disk."""
        path = self.root / obj.key
        self._check_unchanged(obj, path)
        return path

    def finish(self, obj: DropObject, outcome: Outcome) -> None:
        src = self.root / obj.key
        if not src.exists():
            # Already moved: a retry after a crash between the ledger commit and this move.
            log.debug("%s drop zone: %s already moved", self.env, obj.key)
            return
        try:
            self._check_unchanged(obj, src)
        except DropObjectChanged:
            # The partner replaced the file meanwhile: keep the new version for its own run.
            log.info("%s drop zone: %s changed while processing; left for the next run", self.env, obj.key)
            return
        dest = _free_name(self.root / archive_key(outcome, obj.key))
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        now = self._clock()
        os.utime(dest, (now, now))  # retention counts from the move, not from the upload

    def put_back(self, partner: str, date: str, name: str, data: bytes) -> str:
        key = put_back_key(partner, date, name)
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")  # hidden: never listed
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return key

    def sweep(self, older_than: datetime) -> list[str]:
        """Delete archived files moved before ``older_than`` (naive UTC or aware)."""
        cutoff = _epoch(older_than)
        removed = []
        for archive in ARCHIVES:
            for path in sorted((self.root / archive).rglob("*")):
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path.relative_to(self.root).as_posix())
        return removed

    def _walk(self, known: Mapping[str, int]) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files up to the layout's depth; unknown partners are not descended into."""
        stack: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        while stack:
            folder, prefix, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue  # moved away between listing and descending
            for entry in entries:
                rel = prefix + entry.name
                if depth == 0 and entry.name in ARCHIVES:
                    continue
                if entry.is_symlink():
                    # Never follow links out of a partner's folder (§3.1 tenancy).
                    self._ignore(rel, Ignored("symbolic link"))
                elif entry.is_dir(follow_symlinks=False):
                    if depth == 0 and entry.name not in known:
                        self._ignore(rel + "/", Ignored("unknown partner: no partner has this name"))
                    elif depth + 1 >= _MAX_DEPTH:
                        self._ignore(rel + "/", Ignored("folder below date=: files must sit directly in date=YYYY-MM-DD/"))
                    else:
                        stack.append((Path(entry.path), rel + "/", depth + 1))
                elif entry.is_file(follow_symlinks=False):
                    yield rel, entry.stat(follow_symlinks=False)

    def _check_unchanged(self, obj: DropObject, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DropObjectChanged(f"{obj.key} is no longer in the drop zone", hint="list the zone again") from None
        if st.st_size != obj.size or st.st_mtime != obj.mtime:
            raise DropObjectChanged(f"{obj.key} changed since it was listed", hint="wait until it settles and list again")


def _free_name(path: Path) -> Path:
    """``path``, or ``path~N`` when an earlier upload of the same name was archived there."""
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}~{n}")
        n += 1
    return candidate


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # the store's naive UTC convention
    return moment.timestamp()
