"""File containers: gzip and PGP around the data (SPEC §3.3 checks 3–5, §3.3.1, §3.3.2).

``open_content`` turns a stored object into a stream of its decoded bytes, rejecting the
file (``FileRejected``) in SPEC §3.3 order. Nothing is held in memory as a whole: gzip is
decompressed on a worker thread with isal (≈5× ``gzip -dc``, DESIGN §6) and PGP is
decrypted by gpg into a scratch file that is deleted afterwards.

Checks that need the content (corrupt gzip, the uncompressed limit) fire from the
stream's ``read()``; consumers must treat a ``FileRejected`` there like one from opening.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

from isal import igzip_threaded
from isal.igzip_lib import IsalError

from onramp.errors import FileRejected
from onramp.intake.keys import AES_CIPHERS
from onramp.settings import InboundSettings

if TYPE_CHECKING:
    from onramp.intake.keys import PlatformKeyring

Suffix = Literal["gz", "pgp", "gpg"]

GZIP_MAGIC = b"\x1f\x8b"
_PGP_SUFFIXES = frozenset({"pgp", "gpg"})
_READ_CHUNK = 1 << 20
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, IsalError)  # not OSError: a disk error is not the partner's

# Receipt reason -> how the partner fixes it. Reasons with sizes are formatted.
HINTS: dict[str, str] = {
    "empty file": "the object has 0 bytes; upload the file again with its content",
    "too large compressed": "split the data into several files (…sync.1.gz, …sync.2.gz); 200–300 MB compressed is optimal",
    "not gzip data": "the name ends in .gz but the content is not gzip; compress it with gzip or drop the .gz suffix",
    "gzip data without .gz suffix": "the content is gzip-compressed; add .gz to the name or upload it uncompressed",
    "PGP decryption failed": "encrypt to the platform's current public key (gpg --recipient '<platform key uid>' --encrypt) and upload again",
    "only AES ciphers are accepted": "encrypt again with --cipher-algo AES256 (AES, AES192 and AES256 are accepted)",
    "gzip and PGP combined": "PGP already compresses; encrypt the uncompressed file and name it …sync.pgp",
    "corrupt or truncated gzip": "the gzip data is damaged or incomplete; check it with `gzip -t` and upload it again",
    "too large uncompressed": "split the data into several files of about 1 GB uncompressed (…sync.1.gz, …sync.2.gz)",
}


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def estimated_content_bytes(path: Path, suffix: Suffix | None) -> int:
    """A guess of ``path``'s decoded size, before reading it (to size chunks up front).

    gzip: the trailer's ISIZE (the last member's size mod 2^32), or 4x the file when that
    is obviously wrapped or partial; PGP: 4x the file (its content may be compressed);
    plain: the file's size. Callers must cope with a wrong guess."""
    size = path.stat().st_size
    if suffix == "gz" and size >= 18:
        with open(path, "rb") as f:
            f.seek(-4, 2)
            isize = int.from_bytes(f.read(4), "little")
        return isize if isize >= size else size * 4
    if suffix in _PGP_SUFFIXES:
        return size * 4
    return size


@contextmanager
def open_content(
    path: Path,
    suffix: Suffix | None,
    *,
    limits: InboundSettings,
    keyring: PlatformKeyring | None,
    scratch_dir: Path,
) -> Iterator[BinaryIO]:
    """Yield a binary stream of ``path``'s decoded content (decrypted, decompressed).

    ``suffix`` is the container suffix from the file name (``None`` for plain files).
    Raises ``FileRejected`` on opening, or later from ``read()`` for corrupt gzip and
    content beyond ``limits.max_uncompressed_bytes``.
    """
    if suffix is not None and suffix != "gz" and suffix not in _PGP_SUFFIXES:
        raise ValueError(f"unknown container suffix {suffix!r}")
    size = path.stat().st_size
    if size == 0:
        raise _rejected("empty file")
    if suffix is not None and size > limits.max_compressed_bytes:
        kind = "compressed" if suffix == "gz" else "encrypted"
        raise _rejected(f"larger than {format_size(limits.max_compressed_bytes)} {kind}", key="too large compressed")

    if suffix in _PGP_SUFFIXES:
        with _decrypted(path, limits=limits, keyring=keyring, scratch_dir=scratch_dir) as plain:
            with _limited(plain, limits.max_uncompressed_bytes) as stream:
                yield stream
        return

    magic = _head(path)
    if suffix == "gz":
        if magic != GZIP_MAGIC:
            raise _rejected("not gzip data")
        raw = igzip_threaded.open(path, "rb", threads=1, block_size=_READ_CHUNK)
        with _limited(raw, limits.max_uncompressed_bytes, gzipped=True) as stream:
            yield stream
        return

    if magic == GZIP_MAGIC:
        raise _rejected("gzip data without .gz suffix")  # D-23
    if size > limits.max_uncompressed_bytes:
        raise _too_large_uncompressed(limits.max_uncompressed_bytes)
    with _limited(open(path, "rb"), limits.max_uncompressed_bytes) as stream:
        yield stream


def format_size(n: int) -> str:
    """``5 GiB``, ``512 MiB``, ``100 bytes``: sizes as the receipts print them."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit and n % unit == 0:
            return f"{n // unit} {name}"
    return "1 byte" if n == 1 else f"{n:,} bytes"


@contextmanager
def _decrypted(
    path: Path, *, limits: InboundSettings, keyring: PlatformKeyring | None, scratch_dir: Path
) -> Iterator[BinaryIO]:
    if keyring is None:
        raise FileRejected(
            "PGP decryption failed",
            hint="this installation has no platform PGP key; upload the file unencrypted or ask the operator",
        )
    fd, name = tempfile.mkstemp(prefix="decrypted-", suffix=".part", dir=scratch_dir)
    os.close(fd)
    plain_path = Path(name)
    try:
        # gpg is stopped once the plaintext passes the limit (a PGP compression bomb).
        info = keyring.decrypt_file(path, plain_path, max_bytes=limits.max_uncompressed_bytes)
        if not info.ok and not info.too_large:
            raise FileRejected(
                "PGP decryption failed", hint=f"gpg reported '{info.status}'; {HINTS['PGP decryption failed']}"
            )
        if info.cipher not in AES_CIPHERS:
            raise FileRejected(
                "only AES ciphers are accepted",
                hint=f"the file was encrypted with {info.cipher or 'an unknown cipher'}; "
                + HINTS["only AES ciphers are accepted"],
            )
        if _head(plain_path) == GZIP_MAGIC:
            raise _rejected("gzip and PGP combined")
        if info.too_large:
            raise _too_large_uncompressed(limits.max_uncompressed_bytes)
        with open(plain_path, "rb") as plain:
            yield plain
    finally:
        plain_path.unlink(missing_ok=True)


@contextmanager
def _limited(raw: BinaryIO, max_bytes: int, *, gzipped: bool = False) -> Iterator[BinaryIO]:
    checked = _CheckedReader(raw, max_bytes, gzipped=gzipped)
    stream = io.BufferedReader(checked, buffer_size=_READ_CHUNK)
    try:
        yield cast(BinaryIO, stream)
    finally:
        stream.close()


class _CheckedReader(io.RawIOBase):
    """Counts decoded bytes against the uncompressed limit and turns gzip decoding
    errors into ``FileRejected``; both surface from ``read()``."""

    def __init__(self, raw: BinaryIO, max_bytes: int, *, gzipped: bool):
        self._raw = raw
        self._max_bytes = max_bytes
        self._gzipped = gzipped
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        try:
            n = self._raw.readinto(b)  # type: ignore[attr-defined]
        except _GZIP_ERRORS as e:
            if not self._gzipped:
                raise
            raise FileRejected(
                "corrupt or truncated gzip", hint=f"{e}: {HINTS['corrupt or truncated gzip']}"
            ) from e
        n = n or 0
        self.bytes_read += n
        if self.bytes_read > self._max_bytes:
            raise _too_large_uncompressed(self._max_bytes)
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(len(GZIP_MAGIC))


def _rejected(reason: str, *, key: str | None = None) -> FileRejected:
    return FileRejected(reason, hint=HINTS[key or reason])


def _too_large_uncompressed(limit: int) -> FileRejected:
    return _rejected(f"larger than {format_size(limit)} uncompressed", key="too large uncompressed")
