"""Where reject files live, and how they survive a crash (DESIGN §4: all or nothing).

A job writes each receipt's reject file under ``receipts/.pending/<job_id>/<receipt_id>/``
before its COMMIT and moves it to ``receipts/<receipt_id>/`` after. A crash in between
leaves a pending directory; the next job settles it: published if its job committed
(the receipt already points at the final path), deleted otherwise.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import duckdb

FILE_NAME = "rejects.tsv.gz"
_PENDING = Path("receipts") / ".pending"
_active: set[str] = set()  # jobs of this process between write and publish
_lock = threading.Lock()


def published_path(receipt_id: str) -> str:
    """The reject file's path relative to the data directory, as receipts record it."""
    return (Path("receipts") / receipt_id / FILE_NAME).as_posix()


def pending_path(data_dir: Path | str, job_id: str, receipt_id: str) -> Path:
    with _lock:
        _active.add(job_id)
    return Path(data_dir) / _PENDING / job_id / receipt_id / FILE_NAME


def publish(data_dir: Path | str, job_id: str) -> None:
    """Move a committed job's reject files to their final place."""
    job_dir = Path(data_dir) / _PENDING / job_id
    if job_dir.is_dir():
        for rdir in job_dir.iterdir():
            final = Path(data_dir) / "receipts" / rdir.name
            final.mkdir(parents=True, exist_ok=True)
            (rdir / FILE_NAME).replace(final / FILE_NAME)
            rdir.rmdir()
        job_dir.rmdir()
    with _lock:
        _active.discard(job_id)


def recover(data_dir: Path | str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Settle pending directories left by crashed jobs; returns the job IDs settled."""
    root = Path(data_dir) / _PENDING
    if not root.is_dir():
        return []
    settled = []
    for job_dir in sorted(root.iterdir()):
        with _lock:
            if job_dir.name in _active:
                continue  # another job of this process is between its write and its commit
        committed = con.execute("SELECT 1 FROM jobs WHERE job_id = ?", [job_dir.name]).fetchone()
        if committed:
            publish(data_dir, job_dir.name)
        else:
            shutil.rmtree(job_dir, ignore_errors=True)
        settled.append(job_dir.name)
    return settled


def discard(data_dir: Path | str, job_id: str) -> None:
    """Drop a failed (rolled back) job's pending reject files."""
    shutil.rmtree(Path(data_dir) / _PENDING / job_id, ignore_errors=True)
    with _lock:
        _active.discard(job_id)
