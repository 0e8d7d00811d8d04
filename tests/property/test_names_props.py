"""Property tests for the file-name grammars: render → parse round trips; nothing else escapes."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from onramp.errors import InvalidFileName
from onramp.formats.names import MAX_DPID, MAX_SPLIT, DataFileName, SyncFileName, parse_file_name

positive_dpids = st.integers(min_value=1, max_value=MAX_DPID)
timestamps = st.integers(min_value=0, max_value=9_999_999_999)
splits = st.none() | st.integers(min_value=0, max_value=MAX_SPLIT)


def render(prefix: str, numbers: list[int], timestamp: int, mode: str, split: int | None, suffix: str | None) -> str:
    name = prefix + "_".join(str(n) for n in numbers) + f"_{timestamp:010d}.{mode}"
    if split is not None:
        name += f".{split}"
    return name + (f".{suffix}" if suffix else "")


@st.composite
def data_names(draw):
    odc = draw(st.booleans())
    dpid = draw(positive_dpids)
    target = draw(st.none() | positive_dpids)
    timestamp = draw(timestamps)
    mode = draw(st.sampled_from(["sync", "overwrite"]))
    split = draw(splits)
    suffix = draw(st.sampled_from([None, "gz"] if odc else [None, "gz", "pgp", "gpg"]))
    numbers = [dpid] if target is None else [dpid, target]
    name = render("ftp_dpm_odc_" if odc else "ftp_dpm_", numbers, timestamp, mode, split, suffix)
    return name, DataFileName(name, odc, dpid, target, timestamp, mode, split, suffix)


@st.composite
def sync_names(draw):
    prefix = draw(st.sampled_from(["adobe_id_", "c2c_id_"]))
    if prefix == "c2c_id_":
        dpids = tuple(draw(st.lists(positive_dpids, min_size=2, max_size=2)))
    else:
        dpids = tuple(draw(st.lists(st.just(0) | positive_dpids, min_size=2, max_size=6)))
    timestamp = draw(timestamps)
    split = draw(splits)
    suffix = draw(st.sampled_from([None, "gz", "pgp", "gpg"]))
    name = render(prefix, list(dpids), timestamp, "sync", split, suffix)
    return name, SyncFileName(name, prefix, dpids, timestamp, split, suffix)


@given(data_names() | sync_names())
def test_rendered_names_parse_back(case):
    name, expected = case
    parsed = parse_file_name(name)
    assert parsed == expected
    assert name.startswith(parsed.base_name)
    assert parsed.base_name.endswith((".sync", ".overwrite"))


# Characters that make up real names, so random strings reach the deeper checks too.
name_alphabet = st.sampled_from(list("_.0123456789") + ["ftp_dpm_", "odc_", "adobe_id_", "c2c_id_", "sync",
                                                      "overwrite", "gz", "pgp", "gpg", "zip", "SYNC", "/", " "])


@given(st.text() | st.lists(name_alphabet, max_size=30).map("".join), st.booleans())
@example("ftp_dpm_1_1234567890.sync." + "9" * 5000, False)
@example("ftp_dpm_" + "9" * 5000 + "_1234567890.sync", False)
@example("adobe_id_0_" + "9" * 5000 + "_1234567890.sync", True)
def test_random_strings_only_raise_invalid_file_name(name, short_ok):
    try:
        parsed = parse_file_name(name, accept_short_timestamp=short_ok)
    except InvalidFileName as exc:
        assert exc.message and exc.hint
    else:
        assert isinstance(parsed, DataFileName | SyncFileName)
        assert parsed.name == name
