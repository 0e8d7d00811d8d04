"""Crash-safe writes of small files next to the store (journal entries, outbox mail, logs)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the folder: a reader never sees half a file, and once this
    returns the file survives a crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # hidden: never listed
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
