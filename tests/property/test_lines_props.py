"""Property tests for the reference line parser: rendered item lists parse back; junk only ever
raises ``LineError``; whatever parses has the documented shape."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from onramp.formats.buckets import Bucket
from onramp.formats.lines import (
    ODC_ID_TYPES,
    Item,
    LineError,
    ParsedLine,
    ascii_lower,
    check_user_id,
    parse_data_line,
    parse_items,
    parse_sync_row,
)

C0_AND_DEL = "".join(map(chr, range(0x20))) + "\x7f"
_text_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0_AND_DEL)
_unquoted_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0_AND_DEL + ',="')
_quoted_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters=C0_AND_DEL + '"')
spaces = st.sampled_from(["", " ", "  "])
digits = st.from_regex(r"[0-9]{1,12}", fullmatch=True)

unquoted = st.text(_unquoted_chars, min_size=1, max_size=12).filter(lambda t: t == t.strip(" ") and t != "")
quoted_content = st.text(_quoted_chars, min_size=1, max_size=12)
DIRECTIVE_KEYS = {"d_sid", "d_unsid"}


@st.composite
def random_case(draw, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))


@st.composite
def rendered_key(draw, base: str) -> str:
    """``base`` as a key: optional leading dashes (inside the quotes when quoted)."""
    dashes = draw(st.sampled_from(["", "-", "--"]))
    if draw(st.booleans()):
        return f'"{dashes}{base}"'
    return dashes + base


@st.composite
def rendered_value(draw, value: str, quotable_only: bool = False) -> str:
    return f'"{value}"' if quotable_only or draw(st.booleans()) else value


@st.composite
def signal_items(draw):
    if draw(st.booleans()):
        base = draw(unquoted.filter(lambda k: not k.startswith("-")))
    else:
        base = draw(quoted_content.filter(lambda k: not k.startswith("-")))
        # a quoted key may hold anything but '"'; it must be quoted when it holds , = " or edge spaces
    if ascii_lower(base) in DIRECTIVE_KEYS:
        base = "x" + base
    needs_quotes = base != base.strip(" ") or any(c in base for c in ',="')
    key = f'"{draw(st.sampled_from(["", "-"]))}{base}"' if needs_quotes else draw(rendered_key(base))
    if draw(st.booleans()):
        value = draw(unquoted)
        value_text = draw(rendered_value(value))
    else:
        value = draw(quoted_content)
        value_text = f'"{value}"'
    text = f"{key}{draw(spaces)}={draw(spaces)}{value_text}"
    return text, ("signal", ascii_lower(base), value)


@st.composite
def ic_items(draw):
    if draw(st.booleans()):
        n = draw(digits)
        return n, ("signal", "ic", n)
    value = draw(unquoted)
    return f"{draw(rendered_key(draw(random_case('ic'))))}={draw(rendered_value(value))}", ("signal", "ic", value)


@st.composite
def directive_items(draw):
    word = draw(st.sampled_from(sorted(DIRECTIVE_KEYS)))
    n = draw(digits)
    key = draw(rendered_key(draw(random_case(word))))
    text = f"{key}{draw(spaces)}={draw(spaces)}{draw(rendered_value(n))}"
    return text, ("add" if word == "d_sid" else "remove", None, n)


@st.composite
def colon_removals(draw):
    n = draw(digits)
    return f"{n}:{draw(st.sampled_from(['0', '-1']))}", ("remove", None, n)


any_item = st.one_of(signal_items(), ic_items(), directive_items(), colon_removals())


@st.composite
def item_lists(draw):
    """(item text as written after the TAB, expected items)."""
    items = draw(st.lists(any_item, min_size=1, max_size=8))
    pieces: list[str] = []
    for text, _ in items:
        pieces.extend(draw(st.lists(spaces, max_size=2)))  # D-26: empty items in between
        pieces.append(f"{draw(spaces)}{text}{draw(spaces)}")
    pieces.extend(draw(st.lists(spaces, max_size=2)))
    expected = tuple(Item(i, kind, key, value, text) for i, (text, (kind, key, value)) in enumerate(items))
    return ",".join(pieces), expected


user_ids = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=C0_AND_DEL), min_size=1, max_size=20)


@given(user_ids, item_lists(), spaces, st.sampled_from(["", "\r"]))
def test_rendered_lines_parse_back(user_id, items, trailing, terminator):
    item_text, expected = items
    line = f"{user_id}\t{item_text}{trailing}{terminator}".encode()
    assert parse_data_line(line) == ParsedLine(None, user_id, expected)


@given(st.sampled_from(sorted(ODC_ID_TYPES)).flatmap(random_case), user_ids, item_lists())
def test_rendered_odc_lines_parse_back(id_type, user_id, items):
    item_text, expected = items
    line = f"{id_type}\t{user_id}\t{item_text}".encode()
    assert parse_data_line(line, odc=True) == ParsedLine(id_type.lower(), user_id, expected)


# --- Junk in, only LineError out -------------------------------------------------------------------

TOKENS = list('\t\r\n ,="-:0123456789aZ_\x00\x7f\x85\u201c\u0130é') + ["d_sid", "D_UNSID", "ic", "p_", '""', "28:0", "idfa"]
junk_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@st.composite
def mutated_lines(draw):
    """A valid line with a few tokens inserted or characters deleted: junk close to the grammar."""
    text = f"{draw(user_ids)}\t{draw(item_lists())[0]}"
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
    return text.encode("utf-8")


junk_bytes = st.binary(max_size=120) | junk_text.map(lambda t: t.encode("utf-8")) | mutated_lines()


def canonical(item: Item) -> str:
    """A re-rendering of a parsed item that must parse to the same meaning."""
    if item.kind == "add":
        return f"d_sid={item.value}"
    if item.kind == "remove":
        return f"d_unsid={item.value}"
    return f'"{item.key}"="{item.value}"'


@given(junk_bytes, st.booleans(), st.integers(min_value=1, max_value=200))
@example(b'u\t"a', False, 200)
@example(b"idfa\tx\t1", True, 200)
@example("u\t\u0130C=1".encode(), False, 200)
def test_junk_lines_only_raise_line_error(raw, odc, max_line_bytes):
    try:
        parsed = parse_data_line(raw, odc=odc, max_line_bytes=max_line_bytes)
    except LineError as exc:
        assert exc.bucket is Bucket.FORMAT_ERROR
        assert exc.reason and exc.hint
        assert exc.item_position is None or exc.item_position >= 0
        return
    if parsed is None:
        assert not raw.removesuffix(b"\r").strip(b" ")
        return
    assert parsed.user_id and "\t" not in parsed.user_id
    assert (parsed.id_type is not None) == odc
    assert [i.position for i in parsed.items] == list(range(len(parsed.items)))
    for item in parsed.items:
        assert item.text and item.text == item.text.strip(" ")
        assert item.value
        if item.kind == "signal":
            assert item.key and item.key == ascii_lower(item.key) and not item.key.startswith("-")
        else:
            assert item.key is None and item.value.isascii() and item.value.isdigit()
    again = parse_items(",".join(canonical(i) for i in parsed.items))
    assert [(i.kind, i.key, i.value) for i in again] == [(i.kind, i.key, i.value) for i in parsed.items]


@given(
    junk_bytes,
    st.lists(st.sampled_from([0, 20914, 20915, 389146, 12345, 67890]), min_size=2, max_size=4).map(tuple),
    st.booleans(),
)
def test_junk_sync_rows_only_raise_line_error(raw, dpids, c2c):
    try:
        fields = parse_sync_row(raw, dpids, c2c=c2c)
    except LineError as exc:
        assert exc.bucket in (Bucket.FORMAT_ERROR, Bucket.INVALID_AAM_ID, Bucket.INVALID_DEVICE_ID)
        assert exc.reason and exc.hint
        return
    if fields is None:
        assert raw in (b"", b"\r")
        return
    assert len(fields) == len(dpids)
    assert all(f and " " not in f and "\t" not in f for f in fields)


@given(junk_text, st.sampled_from(["platform_uuid", "customer", 20914, 20915, 121963, 389146, 1171489]), st.booleans())
def test_check_user_id_never_raises(user_id, namespace, reject_email_like):
    error = check_user_id(user_id, namespace=namespace, reject_email_like=reject_email_like)
    assert error is None or (error.reason and error.hint)
