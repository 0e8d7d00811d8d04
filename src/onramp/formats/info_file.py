"""Transfer-control `.info` files (SPEC §8.6, §3.10, D-65, D-66): parse and render.

An `.info` file lists the parts of one delivered file set. Outbound, the platform writes
one beside every set; inbound, a partner may upload one so that its logical file is
processed as soon as every listed part has arrived instead of after the settle window.

We write strict JSON with quoted keys (D-66). We read that and also the documentation's
form with unquoted keys, because partners copy the documented sample. Pure: bytes in,
values out.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from onramp.errors import OnrampError

SUFFIX = ".info"

# A bare key before ':' at the start of an object member: {Files: ...} or , md5: ...
_BARE_KEY = re.compile(r'([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)')
_MD5 = re.compile(r"[0-9a-f]{32}")


class InvalidInfoFile(OnrampError):
    """An `.info` control file that cannot be read (SPEC §8.6)."""


@dataclass(frozen=True)
class InfoPart:
    """One listed part: ``size`` and ``md5`` describe the bytes as delivered (compressed if gzipped)."""

    name: str
    size: int | None = None
    lines: int | None = None
    sequence: int | None = None
    md5: str | None = None


@dataclass(frozen=True)
class InfoFile:
    parts: tuple[InfoPart, ...]
    total_name: str | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parts)


def is_info_name(name: str) -> bool:
    return name.endswith(SUFFIX) and len(name) > len(SUFFIX)


def parse_info(data: bytes, *, where: str | None = None) -> InfoFile:
    """Read an `.info` file; raise ``InvalidInfoFile`` saying what is wrong and how to fix it."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInfoFile("not UTF-8 text", hint="write the .info file as UTF-8 JSON (SPEC §8.6)", where=where) from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        # The documented sample has unquoted keys (D-66); quote them and try once more.
        try:
            body = json.loads(_BARE_KEY.sub(r'\1"\2"\3', text))
        except json.JSONDecodeError as exc:
            raise InvalidInfoFile(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                                  hint='write {"Files": [{"FileName": ..., "FileByteSize": ...}], "Totals": {...}}',
                                  where=where) from None
    if not isinstance(body, dict) or not isinstance(body.get("Files"), list) or not body["Files"]:
        raise InvalidInfoFile('no "Files" list', hint='list every part under "Files", one object per part', where=where)
    parts = tuple(_part(entry, i, where) for i, entry in enumerate(body["Files"]))
    if len({p.name for p in parts}) != len(parts):
        raise InvalidInfoFile("a part is listed twice", hint="list each part once", where=where)
    totals = body.get("Totals")
    total_name = totals.get("FileName") if isinstance(totals, dict) and isinstance(totals.get("FileName"), str) else None
    return InfoFile(parts, total_name)


def _part(entry: object, i: int, where: str | None) -> InfoPart:
    if not isinstance(entry, dict):
        raise InvalidInfoFile(f"Files[{i}] is not an object", hint='write {"FileName": "...", "FileByteSize": 123}', where=where)
    name = entry.get("FileName")
    if not isinstance(name, str) or not name or "/" in name:
        raise InvalidInfoFile(f"Files[{i}].FileName is missing or not a plain file name",
                              hint="give the part's file name without folders", where=where)
    md5 = entry.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not _MD5.fullmatch(md5.lower())):
        raise InvalidInfoFile(f"Files[{i}].md5 is not 32 hex digits", hint="give the MD5 of the delivered bytes, or leave it out", where=where)
    return InfoPart(
        name=name,
        size=_count(entry, "FileByteSize", i, where),
        lines=_count(entry, "FileLineCount", i, where),
        sequence=_count(entry, "FileSequenceNumber", i, where),
        md5=md5.lower() if md5 else None,
    )


def _count(entry: dict, key: str, i: int, where: str | None) -> int | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInfoFile(f"Files[{i}].{key} is not a non-negative integer", hint=f"write {key} as a plain number", where=where)
    return value


def info_name(total_name: str) -> str:
    """The `.info` name for a set (D-65): its root name, without mode and suffix, plus `.info`."""
    return total_name.split(".", 1)[0] + SUFFIX


def render_info(parts: list[tuple[str, bytes, int]], total_name: str) -> bytes:
    """The strict-JSON `.info` body for parts given as (file name, delivered bytes, line count)."""
    files = [
        {"FileByteSize": len(data), "FileLineCount": lines, "FileName": name,
         "FileSequenceNumber": seq, "md5": hashlib.md5(data).hexdigest()}
        for seq, (name, data, lines) in enumerate(parts, start=1)
    ]
    totals = {"FileName": total_name, "TotalByteSize": sum(f["FileByteSize"] for f in files),
              "TotalNumberFiles": len(files), "TotalNumberLines": sum(f["FileLineCount"] for f in files)}
    return (json.dumps({"Files": files, "Totals": totals}, indent=2) + "\n").encode()
