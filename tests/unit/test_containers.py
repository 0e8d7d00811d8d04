"""Container checks on real files (SPEC §3.3 checks 3–5, §3.3.1, D-22, D-23)."""

from __future__ import annotations

import gzip
import hashlib
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from onramp.errors import FileRejected
from onramp.intake.containers import Suffix, format_size, open_content, sha256_file
from onramp.intake.reader import iter_line_batches
from onramp.settings import InboundSettings

DATA = b"".join(b"%038d\td_sid=%d,d_sid=%d\n" % (i, i % 7, i % 11) for i in range(2_000))
DEFAULTS = InboundSettings()


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def decode(path: Path, suffix: Suffix | None, limits: InboundSettings = DEFAULTS) -> bytes:
    scratch = path.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    with open_content(path, suffix, limits=limits, keyring=None, scratch_dir=scratch) as stream:
        return stream.read()


def rejection(path: Path, suffix: Suffix | None, limits: InboundSettings = DEFAULTS) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        decode(path, suffix, limits)
    assert caught.value.hint, "every rejection says how to fix it"
    return caught.value


class TestAccepted:
    def test_plain_file_passes_through(self, tmp_path: Path) -> None:
        assert decode(write(tmp_path, "f.sync", DATA), None) == DATA

    def test_gzip_is_decompressed(self, tmp_path: Path) -> None:
        assert decode(write(tmp_path, "f.sync.gz", gzip.compress(DATA)), "gz") == DATA

    def test_multi_member_gzip_is_one_stream(self, tmp_path: Path) -> None:
        half = len(DATA) // 2 + 3  # members need not end at line boundaries
        members = gzip.compress(DATA[:half]) + gzip.compress(DATA[half:], compresslevel=1)
        assert decode(write(tmp_path, "f.sync.gz", members), "gz") == DATA

    def test_lines_stream_from_gzip_into_batches(self, tmp_path: Path) -> None:
        path = write(tmp_path, "f.sync.gz", gzip.compress(b"\xef\xbb\xbf" + DATA.replace(b"\n", b"\r\n")))
        with open_content(path, "gz", limits=DEFAULTS, keyring=None, scratch_dir=tmp_path) as stream:
            table = pa.Table.from_batches(list(iter_line_batches(stream, block_size=4096)))
        assert table.num_rows == 2_000
        assert table.column("line").to_pylist() == DATA.split(b"\n")[:-1]

    def test_exactly_at_the_uncompressed_limit_is_accepted(self, tmp_path: Path) -> None:
        limits = InboundSettings(max_uncompressed_bytes=len(DATA))
        assert decode(write(tmp_path, "f.sync.gz", gzip.compress(DATA)), "gz", limits) == DATA
        assert decode(write(tmp_path, "f.sync", DATA), None, limits) == DATA

    def test_decompression_thread_stops_when_the_stream_closes(self, tmp_path: Path) -> None:
        before = threading.active_count()
        path = write(tmp_path, "f.sync.gz", gzip.compress(DATA * 50))
        with open_content(path, "gz", limits=DEFAULTS, keyring=None, scratch_dir=tmp_path) as stream:
            stream.read(10)  # stop early: the worker must still be joined
        assert threading.active_count() == before


class TestRejectedOnOpening:
    @pytest.mark.parametrize("suffix", [None, "gz", "pgp", "gpg"])
    def test_empty_object(self, tmp_path: Path, suffix: Suffix | None) -> None:
        assert rejection(write(tmp_path, "f", b""), suffix).message == "empty file"

    def test_compressed_object_over_the_limit(self, tmp_path: Path) -> None:
        compressed = gzip.compress(DATA)
        limits = InboundSettings(max_compressed_bytes=len(compressed) - 1)
        error = rejection(write(tmp_path, "f.sync.gz", compressed), "gz", limits)
        assert error.message == f"larger than {len(compressed) - 1:,} bytes compressed"

    def test_encrypted_object_over_the_limit_is_rejected_before_decryption(self, tmp_path: Path) -> None:
        error = rejection(write(tmp_path, "f.sync.pgp", b"x" * 11), "pgp", InboundSettings(max_compressed_bytes=10))
        assert error.message == "larger than 10 bytes encrypted"

    def test_compressed_limit_does_not_apply_to_plain_files(self, tmp_path: Path) -> None:
        assert decode(write(tmp_path, "f.sync", DATA), None, InboundSettings(max_compressed_bytes=10)) == DATA

    def test_gz_name_without_gzip_bytes(self, tmp_path: Path) -> None:
        assert rejection(write(tmp_path, "f.sync.gz", DATA), "gz").message == "not gzip data"

    def test_gz_name_with_one_byte(self, tmp_path: Path) -> None:
        assert rejection(write(tmp_path, "f.sync.gz", b"\x1f"), "gz").message == "not gzip data"

    def test_gzip_bytes_without_gz_suffix(self, tmp_path: Path) -> None:
        error = rejection(write(tmp_path, "f.sync", gzip.compress(DATA)), None)
        assert error.message == "gzip data without .gz suffix"

    def test_plain_file_over_the_uncompressed_limit(self, tmp_path: Path) -> None:
        error = rejection(write(tmp_path, "f.sync", DATA), None, InboundSettings(max_uncompressed_bytes=100))
        assert error.message == "larger than 100 bytes uncompressed"

    def test_pgp_without_a_platform_key(self, tmp_path: Path) -> None:
        assert rejection(write(tmp_path, "f.sync.pgp", b"\x85\x01"), "pgp").message == "PGP decryption failed"

    def test_unknown_suffix_is_a_programming_error(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="zip"):
            decode(write(tmp_path, "f.sync.zip", DATA), "zip")  # type: ignore[arg-type]


class TestRejectedWhileReading:
    """Problems only the content shows surface from ``read()``, after some bytes came out."""

    def test_over_the_uncompressed_limit(self, tmp_path: Path) -> None:
        path = write(tmp_path, "f.sync.gz", gzip.compress(DATA))
        limits = InboundSettings(max_uncompressed_bytes=len(DATA) - 1)
        with open_content(path, "gz", limits=limits, keyring=None, scratch_dir=tmp_path) as stream:
            with pytest.raises(FileRejected) as caught:
                while stream.read(1000):
                    pass
        assert caught.value.message == f"larger than {len(DATA) - 1:,} bytes uncompressed"
        assert "split" in (caught.value.hint or "")

    def test_default_limit_is_printed_in_gib(self) -> None:
        assert format_size(DEFAULTS.max_uncompressed_bytes) == "5 GiB"
        assert format_size(DEFAULTS.max_compressed_bytes) == "3 GiB"

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda gz: gz[: len(gz) // 2], id="truncated"),
            pytest.param(lambda gz: gz[:-4], id="truncated-trailer"),
            pytest.param(lambda gz: gz[:10], id="header-only"),
            pytest.param(lambda gz: gz[:-8] + b"\0\0\0\0" + gz[-4:], id="bad-crc"),
            pytest.param(lambda gz: gz[:-4] + b"\1\0\0\0", id="bad-length"),
            pytest.param(lambda gz: gz[:2] + b"\7" + gz[3:], id="unknown-method"),
            pytest.param(lambda gz: gz[:20] + b"\xff" * 16 + gz[36:], id="corrupt-deflate"),
            pytest.param(lambda gz: gz + b"trailing garbage", id="trailing-garbage"),
            pytest.param(lambda gz: gz + gz[: len(gz) // 2], id="truncated-second-member"),
        ],
    )
    def test_corrupt_or_truncated_gzip(self, tmp_path: Path, damage: object) -> None:
        path = write(tmp_path, "f.sync.gz", damage(gzip.compress(DATA)))  # type: ignore[operator]
        error = rejection(path, "gz")
        assert error.message == "corrupt or truncated gzip"
        assert "gzip -t" in (error.hint or "")


def test_sha256_file(tmp_path: Path) -> None:
    content = DATA * 300  # several read chunks
    assert sha256_file(write(tmp_path, "f", content)) == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("n", "text"),
    [(5 * 2**30, "5 GiB"), (3 * 2**20, "3 MiB"), (2**10, "1 KiB"), (1000, "1,000 bytes"), (1, "1 byte")],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
