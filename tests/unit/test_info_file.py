"""`.info` transfer-control files (formats.info_file, SPEC §8.6, D-65, D-66)."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onramp.formats.info_file import InvalidInfoFile, info_name, is_info_name, parse_info, render_info

# The documentation's sample, with its unquoted keys (D-66) and a real md5.
DOCUMENTED = b"""{
  Files: [
    {FileByteSize: 293029329, FileLineCount: 36893908,
     FileName: "ftp_12345_67890_full_1500727351632001.sync.gz",
     FileSequenceNumber: 1, md5: "0123456789abcdef0123456789abcdef"}
  ],
  Totals: {FileName: "ftp_12345_67890_full_1500727351632.sync",
           TotalByteSize: 293029329, TotalNumberFiles: 1, TotalNumberLines: 36893908}
}"""


def test_documented_form_with_unquoted_keys_is_read():
    info = parse_info(DOCUMENTED)
    (part,) = info.parts
    assert part.name == "ftp_12345_67890_full_1500727351632001.sync.gz"
    assert (part.size, part.lines, part.sequence) == (293029329, 36893908, 1)
    assert part.md5 == "0123456789abcdef0123456789abcdef"
    assert info.total_name == "ftp_12345_67890_full_1500727351632.sync"


def test_render_then_parse_round_trips():
    parts = [("ftp_dpm_21_1700000000.sync.1.gz", b"\x1f\x8babc", 10), ("ftp_dpm_21_1700000000.sync.2.gz", b"xyz!", 7)]
    body = render_info(parts, "ftp_dpm_21_1700000000.sync")
    assert json.loads(body)["Totals"] == {"FileName": "ftp_dpm_21_1700000000.sync", "TotalByteSize": 9,
                                         "TotalNumberFiles": 2, "TotalNumberLines": 17}
    info = parse_info(body)
    assert [(p.name, p.size, p.lines, p.sequence) for p in info.parts] == [
        ("ftp_dpm_21_1700000000.sync.1.gz", 5, 10, 1), ("ftp_dpm_21_1700000000.sync.2.gz", 4, 7, 2)]
    assert info.parts[1].md5 == hashlib.md5(b"xyz!").hexdigest()


@given(st.lists(st.tuples(st.from_regex(r"ftp_dpm_[1-9][0-9]{0,5}_[0-9]{10}\.sync\.[1-9][0-9]?", fullmatch=True),
                          st.binary(max_size=40), st.integers(0, 10**9)),
                min_size=1, max_size=5, unique_by=lambda t: t[0]))
def test_round_trip_property(parts):
    info = parse_info(render_info(parts, "x.sync"))
    assert [(p.name, p.size, p.lines) for p in info.parts] == [(n, len(d), c) for n, d, c in parts]


@pytest.mark.parametrize("body, what", [
    (b"not json at all", "not JSON"),
    (b"{}", 'no "Files" list'),
    (b'{"Files": []}', 'no "Files" list'),
    (b'{"Files": ["a"]}', "Files[0] is not an object"),
    (b'{"Files": [{"FileByteSize": 3}]}', "Files[0].FileName is missing"),
    (b'{"Files": [{"FileName": "../x"}]}', "Files[0].FileName is missing or not a plain file name"),
    (b'{"Files": [{"FileName": "a", "FileByteSize": -1}]}', "Files[0].FileByteSize is not a non-negative integer"),
    (b'{"Files": [{"FileName": "a", "FileByteSize": "12"}]}', "Files[0].FileByteSize is not a non-negative integer"),
    (b'{"Files": [{"FileName": "a", "md5": "xyz"}]}', "Files[0].md5 is not 32 hex digits"),
    (b'{"Files": [{"FileName": "a"}, {"FileName": "a"}]}', "a part is listed twice"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_invalid_files_say_what_and_how_to_fix(body, what):
    with pytest.raises(InvalidInfoFile) as err:
        parse_info(body, where="x.info")
    assert what in err.value.message
    assert err.value.hint and err.value.where == "x.info"


def test_names():
    assert info_name("ftp_dpm_21_1700000000.sync") == "ftp_dpm_21_1700000000.info"
    assert is_info_name("ftp_dpm_21_1700000000.info")
    assert not is_info_name(".info") and not is_info_name("ftp_dpm_21_1700000000.sync")
