"""iter_line_batches agrees with a plain ``bytes.split(b"\\n")`` model on any content."""

from __future__ import annotations

import io
import re

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from onramp.formats.lines import LINE_CONTROL_RE
from onramp.intake.reader import LINE_SCHEMA, UTF8_BOM, iter_line_batches

CONTROL = re.compile(LINE_CONTROL_RE.encode())

# Pieces that make terminators, BOMs and long runs likely in random content.
PIECES = [b"\n", b"\r", b"\r\n", b"a", b"\t", b" ", b"      ", b"\x00", b"\x1f", b"\x7f", b"\xc2\x85", b"\xef", b"\xbb\xbf", UTF8_BOM,
          b"0123456789abcdef"]
contents = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(PIECES), max_size=120).map(b"".join),
    st.tuples(st.sampled_from([b"", UTF8_BOM]), st.lists(st.sampled_from(PIECES), max_size=60)).map(
        lambda t: t[0] + b"".join(t[1])
    ),
)


def model(content: bytes, max_line_bytes: int, excerpt_bytes: int) -> list[tuple[int, bytes, bool, bool]]:
    """The reference semantics: split on LF, no phantom line after a final LF, one CR stripped.

    A too-long line of spaces only is blank (§3.7 tests blankness first): it comes out empty.
    ``control``: a line that is not too long matches the reference parser's control-character
    pattern (formats.lines).
    """
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM) :]
    if not content:
        return []
    parts = content.split(b"\n")
    if content.endswith(b"\n"):
        parts.pop()
    out = []
    for line_no, part in enumerate(parts, 1):
        line = part[:-1] if part.endswith(b"\r") else part
        too_long = len(line) > max_line_bytes
        if too_long and line.strip(b" ") == b"":
            line, too_long = b"", False
        control = not too_long and CONTROL.search(line) is not None
        out.append((line_no, line[:excerpt_bytes] if too_long else line, too_long, control))
    return out


@settings(max_examples=400, deadline=None)
@given(
    content=contents,
    block_size=st.integers(1, 48),
    max_line_bytes=st.integers(0, 40),
    excerpt_bytes=st.integers(1, 20),
)
def test_batches_match_the_split_model(content: bytes, block_size: int, max_line_bytes: int, excerpt_bytes: int) -> None:
    batches = list(
        iter_line_batches(
            io.BytesIO(content), max_line_bytes=max_line_bytes, block_size=block_size, excerpt_bytes=excerpt_bytes
        )
    )
    assert all(b.num_rows > 0 and b.schema == LINE_SCHEMA for b in batches)
    cols = pa.Table.from_batches(batches, schema=LINE_SCHEMA).to_pydict()
    got = list(zip(cols["line_no"], cols["line"], cols["too_long"], cols["control"], strict=True))
    assert got == model(content, max_line_bytes, excerpt_bytes)


@settings(max_examples=100, deadline=None)
@given(content=contents, block_size=st.integers(1, 48))
def test_without_long_lines_the_lines_reassemble_the_content(content: bytes, block_size: int) -> None:
    cols = pa.Table.from_batches(
        list(iter_line_batches(io.BytesIO(content), block_size=block_size)), schema=LINE_SCHEMA
    ).to_pydict()
    body = content[len(UTF8_BOM) :] if content.startswith(UTF8_BOM) else content
    # Every byte is in a line except the LFs and one CR before each LF (or before the end).
    assert sum(map(len, cols["line"])) == len(body) - body.count(b"\n") - _stripped_crs(body)


def _stripped_crs(body: bytes) -> int:
    parts = body.split(b"\n")
    if body.endswith(b"\n"):
        parts.pop()
    return sum(1 for p in parts if p.endswith(b"\r"))
