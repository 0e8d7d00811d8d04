"""The drop-zone layout as pure functions over relative keys (SPEC §3.1, [D-19]).

Every zone (S3 prefix, local directory, FTP/SFTP homes) holds uploads at
``<partner>/date=YYYY-MM-DD/<file>``, where ``<partner>`` is the partner's configured
name (its slug, §11.2). Keys here are relative to the zone root, ``/``-separated.
Anything else is *ignored*: never processed, logged once by the zone. Two kinds of
ignored objects are normal and not worth a warning (``quiet``): Onramp's own
archive (``processed/``, ``rejected/``) and receipts it writes back, and hidden or
partial files that uploads and atomic writes leave behind for a moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

ARCHIVES = ("processed", "rejected")  # top-level folders Onramp owns; no partner may be named so
DATE_PREFIX = "date="
# Written back next to an upload (receipt JSON, reject file). No inbound file name (§3.2,
# §2.3.1) can end like this, so the listing can tell them apart from partner uploads.
PUT_BACK_SUFFIXES = {"receipt": ".receipt.json", "rejects": ".rejects.tsv.gz"}
# Names FTP/SFTP clients give to uploads still in flight (WinSCP ".filepart", etc.).
PARTIAL_SUFFIXES = (".part", ".filepart", ".partial", ".tmp")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DropKey:
    """A key inside the layout."""

    partner: str
    date: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.partner}/{DATE_PREFIX}{self.date}/{self.name}"


@dataclass(frozen=True)
class Ignored:
    """A key outside the layout, with the reason an operator reads in the log."""

    reason: str
    quiet: bool = False


def parse_key(rel: str) -> DropKey | Ignored:
    """Place a zone-relative key in the layout, or say why it is ignored.

    Partner existence is not checked here (the zone knows the partners).
    """
    parts = rel.split("/")
    if parts[0] in ARCHIVES:
        return Ignored("Onramp's archive of handled files", quiet=True)
    if any(not p for p in parts):
        return Ignored("empty path segment (double or trailing '/')")
    if len(parts) == 2 and is_partial_name(parts[1]):
        return Ignored("upload in progress", quiet=True)
    if len(parts) != 3:
        return Ignored(f"wrong depth ({len(parts)} segments): expected <partner>/date=YYYY-MM-DD/<file>")
    partner, folder, name = parts
    if not folder.startswith(DATE_PREFIX):
        return Ignored(f"folder '{folder}' is not date=YYYY-MM-DD: put files under <partner>/date=YYYY-MM-DD/")
    day = folder[len(DATE_PREFIX):]
    if not is_valid_date(day):
        return Ignored(f"'{folder}' is not a calendar date: write date=YYYY-MM-DD, e.g. date=2026-11-22")
    if name.startswith(".") or is_partial_name(name):
        return Ignored("hidden or partial file", quiet=True)
    if is_put_back(name):
        return Ignored("receipt or reject file written back by Onramp", quiet=True)
    return DropKey(partner, day, name)


def is_valid_date(text: str) -> bool:
    """``YYYY-MM-DD`` naming a real calendar day (SPEC §3.1)."""
    if not _DATE.fullmatch(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def is_safe_segment(text: str) -> bool:
    """Usable as one path segment on every transport: a partner folder or FTP login."""
    return bool(text) and text not in (".", "..") and "/" not in text and "\\" not in text and "\0" not in text


def is_partner_folder(text: str) -> bool:
    """A partner name that can own a drop folder (not one of Onramp's archives)."""
    return is_safe_segment(text) and not text.startswith(".") and text not in ARCHIVES


def is_partial_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(PARTIAL_SUFFIXES)


def is_put_back(name: str) -> bool:
    return name.endswith(tuple(PUT_BACK_SUFFIXES.values()))


def put_back_name(upload_name: str, kind: str) -> str:
    """The name of a receipt (``kind="receipt"``) or reject file written next to an upload."""
    return upload_name + PUT_BACK_SUFFIXES[kind]


def put_back_key(partner: str, day: str, name: str) -> str:
    """The key of a receipt or reject file written next to an upload in ``<partner>/date=<day>/``."""
    if not (is_safe_segment(partner) and is_valid_date(day) and is_safe_segment(name)):
        raise ValueError(f"cannot write back {partner!r}/{day!r}/{name!r}: not a <partner>/date=YYYY-MM-DD/<file> key")
    if not is_put_back(name):
        raise ValueError(f"{name!r} would be listed as a partner upload: name it with layout.put_back_name()")
    return DropKey(partner, day, name).key


def archive_key(outcome: str, key: str) -> str:
    """Where a handled upload is kept: ``processed/<key>`` or ``rejected/<key>``."""
    if outcome not in ARCHIVES:
        raise ValueError(f"outcome {outcome!r} must be one of {ARCHIVES}")
    return f"{outcome}/{key}"


def dated_key(partner: str, day: date, name: str) -> str:
    """The layout key of a file uploaded on ``day`` (FTP/SFTP uploads, §3.1)."""
    return DropKey(partner, day.isoformat(), name).key
