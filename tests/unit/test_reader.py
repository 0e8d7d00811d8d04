"""Line splitting (SPEC §3.6, §3.7, D-16): numbering, terminators, BOM, long lines, blocks."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest

from onramp.intake.reader import EXCERPT_BYTES, LINE_SCHEMA, iter_line_batches

Row = tuple[int, bytes, bool]


def rows(content: bytes, **kwargs: int) -> list[Row]:
    return rows_of(io.BytesIO(content), **kwargs)


def rows_of(stream: io.RawIOBase | io.BufferedIOBase, **kwargs: int) -> list[Row]:
    batches = list(iter_line_batches(stream, **kwargs))  # type: ignore[arg-type]
    table = pa.Table.from_batches(batches, schema=LINE_SCHEMA)
    cols = table.to_pydict()
    return list(zip(cols["line_no"], cols["line"], cols["too_long"], strict=True))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"a\nb\n", [(1, b"a", False), (2, b"b", False)], id="lf"),
        pytest.param(b"a\r\nb\r\n", [(1, b"a", False), (2, b"b", False)], id="crlf"),
        pytest.param(b"a\nb", [(1, b"a", False), (2, b"b", False)], id="no-final-newline"),
        pytest.param(b"a\r\nb\r", [(1, b"a", False), (2, b"b", False)], id="final-cr-without-lf"),
        pytest.param(b"a\r\r\n", [(1, b"a\r", False)], id="only-one-cr-stripped"),
        pytest.param(b"a\rb\n", [(1, b"a\rb", False)], id="inner-cr-kept"),
        pytest.param(
            b"\na\n\r\n  \nb\n",
            [(1, b"", False), (2, b"a", False), (3, b"", False), (4, b"  ", False), (5, b"b", False)],
            id="blank-lines-counted",
        ),
        pytest.param(b"\n", [(1, b"", False)], id="one-blank-line"),
        pytest.param(b"\xef\xbb\xbfa\nb\n", [(1, b"a", False), (2, b"b", False)], id="bom-skipped"),
        pytest.param(b"\xef\xbb\xbf\na\n", [(1, b"", False), (2, b"a", False)], id="bom-then-blank"),
        pytest.param(b"a\n\xef\xbb\xbfb\n", [(1, b"a", False), (2, b"\xef\xbb\xbfb", False)], id="bom-later-kept"),
        pytest.param(b"\xef\xbbx\n", [(1, b"\xef\xbbx", False)], id="partial-bom-kept"),
        pytest.param(b"\xff\xfe\x00bad\n", [(1, b"\xff\xfe\x00bad", False)], id="invalid-utf8-untouched"),
        pytest.param(b"a\tb\x00c\n", [(1, b"a\tb\x00c", False)], id="tabs-and-nul-untouched"),
    ],
)
def test_line_rules(content: bytes, expected: list[Row]) -> None:
    assert rows(content) == expected


def controls(content: bytes, **kwargs: int) -> list[bool]:
    batches = list(iter_line_batches(io.BytesIO(content), **kwargs))
    return pa.Table.from_batches(batches, schema=LINE_SCHEMA).column("control").to_pylist()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"a\tb\r\n", [False], id="tab-and-stripped-cr-are-not-control"),
        pytest.param(b"a\rb\n", [True], id="inner-cr"),
        pytest.param(b"a\r\r\n", [True], id="cr-before-the-stripped-one"),
        pytest.param(b"\x00\nok\n\x1f\n\x7f\n", [True, False, True, True], id="nul-us-del"),
        pytest.param(b"\xc2\x85 \xc2\xa0\n", [False], id="c1-and-nbsp-are-text"),
        pytest.param(b"ok\nx\x01", [False, True], id="last-line-without-lf"),
        pytest.param(b"a\r\nb\x01\r\nc\r\nd\r", [False, True, False, False], id="crlf-file-with-one-control"),
        pytest.param(b"a\r\nb\rc\r\n", [False, True], id="crlf-file-with-an-inner-cr"),
    ],
)
def test_control_characters_are_flagged_per_line(content: bytes, expected: list[bool]) -> None:
    assert controls(content) == expected


def test_control_flag_of_lines_across_small_blocks() -> None:
    content = b"".join(b"line%d\x08\n" % i if i % 3 == 0 else b"line%d\n" % i for i in range(50))
    assert controls(content, block_size=7) == [i % 3 == 0 for i in range(50)]


def test_too_long_lines_are_not_flagged() -> None:
    # The bucket of a too-long line is too_long (SPEC §3.7 order), whatever it holds.
    assert controls(b"\x00234567\n\x001\n", max_line_bytes=5) == [False, True]


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"])
def test_no_lines_yield_no_batches(content: bytes) -> None:
    assert list(iter_line_batches(io.BytesIO(content))) == []


def test_batches_have_the_line_schema() -> None:
    (batch,) = iter_line_batches(io.BytesIO(b"x\ty\n"))
    assert batch.schema == LINE_SCHEMA
    assert batch.schema.field("line").type == pa.binary()


class TestLineLength:
    def test_exactly_at_the_limit_is_accepted(self) -> None:
        assert rows(b"12345\n", max_line_bytes=5) == [(1, b"12345", False)]

    def test_cr_does_not_count_towards_the_limit(self) -> None:
        assert rows(b"12345\r\n", max_line_bytes=5) == [(1, b"12345", False)]

    def test_one_byte_over_is_too_long(self) -> None:
        assert rows(b"123456\nok\n", max_line_bytes=5) == [(1, b"123456", True), (2, b"ok", False)]

    def test_too_long_lines_keep_an_excerpt(self) -> None:
        line = bytes(range(256)).replace(b"\n", b"-") * 2
        assert rows(line + b"\r\nnext", max_line_bytes=300) == [(1, line[:EXCERPT_BYTES], True), (2, b"next", False)]

    def test_default_limit_is_102400_bytes(self) -> None:
        ok, over = b"a" * 102_400, b"b" * 102_401
        assert rows(ok + b"\n" + over + b"\n") == [(1, ok, False), (2, over[:EXCERPT_BYTES], True)]

    @pytest.mark.parametrize("block_size", [1, 7, 64, 1000])
    def test_a_line_longer_than_the_block_is_skipped_in_blocks(self, block_size: int) -> None:
        long = b"L" * 5000 + b"\r"
        content = b"a\n" + long + b"\nb\n" + long
        assert rows(content, max_line_bytes=100, block_size=block_size, excerpt_bytes=10) == [
            (1, b"a", False),
            (2, b"L" * 10, True),
            (3, b"b", False),
            (4, b"L" * 10, True),
        ]

    @pytest.mark.parametrize("block_size", [1, 3, 16])
    def test_a_valid_line_longer_than_the_block_is_kept_whole(self, block_size: int) -> None:
        line = bytes(range(32, 127))
        assert rows(line + b"\r\n" + line, block_size=block_size) == [(1, line, False), (2, line, False)]


@pytest.mark.parametrize("block_size", [1, 2, 3, 4, 5, 13, 4096])
def test_lines_crossing_block_boundaries(block_size: int) -> None:
    lines = [b"", b"x", b"\xef\xbb\xbf", b"0123456789abc", b"a\tb,c=d", b"", b"y" * 40]
    content = b"\xef\xbb\xbf" + b"\r\n".join(lines) + b"\n"
    assert rows(content, block_size=block_size) == [(i, line, False) for i, line in enumerate(lines, 1)]


def test_line_numbers_continue_across_batches() -> None:
    content = b"".join(b"%d\n" % i for i in range(1, 10_001))
    batches = list(iter_line_batches(io.BytesIO(content), block_size=1000))
    assert len(batches) > 10
    got = pa.Table.from_batches(batches).to_pydict()
    assert got["line_no"] == list(range(1, 10_001))
    assert got["line"] == [b"%d" % i for i in range(1, 10_001)]


def test_batches_do_not_alias_the_reused_block_buffer() -> None:
    content = b"".join(bytes([65 + i % 26]) * (i % 30) + b"\n" for i in range(500))
    batches = list(iter_line_batches(io.BytesIO(content), block_size=64))
    assert pa.Table.from_batches(batches).column("line").to_pylist() == content.split(b"\n")[:-1]


class _Trickle(io.RawIOBase):
    """A raw stream that returns at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int):
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._step, len(self._data))
        b[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


class _ReadOnly:
    """A stream offering ``read`` but no ``readinto``."""

    def __init__(self, data: bytes):
        self._inner = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._inner.read(min(n, 2))


def test_short_reads_are_retried() -> None:
    content = b"\xef\xbb\xbfab\r\ncd\nef"
    expected = [(1, b"ab", False), (2, b"cd", False), (3, b"ef", False)]
    assert rows_of(_Trickle(content, 1), block_size=4) == expected
    assert rows_of(_ReadOnly(content), block_size=4) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"block_size": 0}, {"max_line_bytes": -1}, {"excerpt_bytes": 0}, {"block_size": 2**31}]
)
def test_invalid_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        next(iter_line_batches(io.BytesIO(b"a\n"), **kwargs))
