"""User-ID namespaces and their validation rules (SPEC §1.3–§1.5, §3.5).

The regular expressions are RE2-compatible, so the engine can use the very same
patterns in SQL (DuckDB's regexp functions are RE2) as the Python checks here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

PLATFORM_UUID_DPID = 0
PLATFORM_UUID_RE = r"^[0-9]{38}$"

_LOWER_GUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UPPER_GUID = r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"
# D-07: "alphanumeric string" — alphanumerics with inner hyphens, 1–100 characters.
_ALNUM_ID = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,98}[A-Za-z0-9])?$"
# D-08: ad-tracking-limited devices report the all-zero GUID.
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class DeviceIdFormat:
    """A global device data source (§1.5): shared by all partners, strict ID format."""

    dpid: int
    name: str
    regex: str
    example: str | None
    integration_code: str | None = None

    @property
    def kind(self) -> str:
        """How the expected ID looks, for error hints."""
        if self.regex == _LOWER_GUID:
            return "lower-case 8-4-4-4-12 hex GUID"
        if self.regex == _UPPER_GUID:
            return "upper-case 8-4-4-4-12 hex GUID"
        return "1–100 letters, digits and inner hyphens"


GLOBAL_DEVICE_SOURCES: dict[int, DeviceIdFormat] = {
    f.dpid: f
    for f in (
        DeviceIdFormat(20914, "Google Advertising ID (GAID)", _LOWER_GUID, "e4fe9bde-caa0-47b6-908d-ffba3fa184f2", "DSID_20914"),
        DeviceIdFormat(20915, "Apple IDFA", _UPPER_GUID, "6D92078A-8246-4BA4-AE5B-76104861E7DC", "DSID_20915"),
        DeviceIdFormat(121963, "Roku RIDA", _LOWER_GUID, "fcb2a29c-315a-5e6b-bcfd-d889ba19aada"),
        DeviceIdFormat(389146, "Microsoft Advertising ID (MAID)", _ALNUM_ID, None),
        DeviceIdFormat(963906, "Samsung Tizen TIFA", _ALNUM_ID, None),
        DeviceIdFormat(488258, "Amazon Fire TV advertising ID", _LOWER_GUID, "df07c7dc-cea7-4a89-b328-810ff5acb15d"),
        DeviceIdFormat(1171485, "LG webOS (LGUDID)", _LOWER_GUID, "095f142a-ace8-ac5d-b86a-92c8be18b197"),
        DeviceIdFormat(1171489, "Vizio IFA", _ALNUM_ID, "7XCBNROQJQPYW"),
    )
}


def is_global_device_dpid(dpid: int) -> bool:
    return dpid in GLOBAL_DEVICE_SOURCES


def is_device_namespace(dpid: int) -> bool:
    """Device-level profile namespaces: platform UUIDs and global device IDs."""
    return dpid == PLATFORM_UUID_DPID or dpid in GLOBAL_DEVICE_SOURCES


# --- Validators -------------------------------------------------------------------------------
# Every pattern below is RE2-compatible (no lookarounds, no backreferences) and spells out its
# character classes in ASCII, so Python's `re` and DuckDB's RE2 accept exactly the same strings.
# Python callers must use `fullmatch` for anchored patterns: `$` in `re` also matches before a
# final "\n".

# §1.4 + D-04: a colon, an encoded colon, or a C0 control character / DEL anywhere.
DPUUID_FORBIDDEN_RE = r"[\x00-\x1f\x7f:]|%3[Aa]"
# D-05, the spec's ^[^@\s]+@[^@\s]+\.[^@\s]+$ with \s written out: Python's str `\s` also
# matches Unicode spaces (U+00A0, ...), RE2's does not; this spelling behaves alike in both.
EMAIL_LIKE_RE = r"^[^@\t\n\v\f\r ]+@[^@\t\n\v\f\r ]+\.[^@\t\n\v\f\r ]+$"
# §2.3.2: the hashed-email column of c2c_id_ files (lower-case SHA-256 hex).
HASHED_EMAIL_RE = r"^[0-9a-f]{64}$"
DPUUID_MAX_BYTES = 1024  # D-06

_PLATFORM_UUID = re.compile(PLATFORM_UUID_RE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED_COLON = re.compile(r"%3[Aa]")
_EMAIL_LIKE = re.compile(EMAIL_LIKE_RE)
_HASHED_EMAIL = re.compile(HASHED_EMAIL_RE)
_DEVICE_RES: dict[int, re.Pattern[str]] = {d: re.compile(f.regex) for d, f in GLOBAL_DEVICE_SOURCES.items()}

# check_dpuuid's reasons, each with the fix hint the reject file shows.
DPUUID_EMPTY = "is empty"
DPUUID_TOO_LONG = f"is longer than {DPUUID_MAX_BYTES:,} bytes"
DPUUID_CONTROL = "contains a control character"
DPUUID_COLON = "contains ':'"
DPUUID_ENCODED_COLON = "contains '%3A' (an encoded colon)"
DPUUID_EMAIL = "looks like a raw email address"
DPUUID_HINTS: dict[str, str] = {
    DPUUID_EMPTY: "put the customer ID before the TAB",
    DPUUID_TOO_LONG: f"customer IDs are at most {DPUUID_MAX_BYTES:,} UTF-8 bytes",
    DPUUID_CONTROL: "customer IDs must not contain TAB, CR, LF or other control characters",
    DPUUID_COLON: "customer IDs must not contain ':'; use another separator or hash the ID",
    DPUUID_ENCODED_COLON: "files carry raw IDs, not URL-encoded ones, and customer IDs must not contain ':'",
    DPUUID_EMAIL: "raw email addresses are PII; send a SHA-256 hash or a random ID instead",
}


def check_platform_uuid(s: str) -> bool:
    """True when ``s`` is a platform UUID: exactly 38 ASCII digits (§1.3)."""
    return _PLATFORM_UUID.fullmatch(s) is not None


def check_device_id(dpid: int, s: str) -> bool:
    """True when ``s`` is a valid ID of global device data source ``dpid`` (§1.5).

    Exact case, no normalization; the all-zero GUID of ad-tracking-limited devices is
    invalid for every source (D-08). Raises ``ValueError`` for a DPID that is not global.
    """
    if dpid not in _DEVICE_RES:
        raise ValueError(f"DPID {dpid} is not a global device data source")
    return s != ZERO_GUID and _DEVICE_RES[dpid].fullmatch(s) is not None


# First failing rule wins; the email rule is skipped when reject_email_like is off.
_DPUUID_RULES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (DPUUID_EMPTY, lambda s: not s),
    (DPUUID_TOO_LONG, lambda s: len(s.encode("utf-8", "surrogatepass")) > DPUUID_MAX_BYTES),
    (DPUUID_CONTROL, lambda s: _CONTROL.search(s) is not None),
    (DPUUID_COLON, lambda s: ":" in s),
    (DPUUID_ENCODED_COLON, lambda s: _ENCODED_COLON.search(s) is not None),
    (DPUUID_EMAIL, lambda s: _EMAIL_LIKE.fullmatch(s) is not None),
)


def check_dpuuid(s: str, *, reject_email_like: bool = True) -> str | None:
    """None when ``s`` is a valid customer ID (DPUUID, §1.4), else the reason (a ``DPUUID_*``).

    Rules in order: empty, longer than 1,024 UTF-8 bytes (D-06), C0 control or DEL, ':',
    '%3A'/'%3a' (D-04), raw-email look-alike (D-05, only when ``reject_email_like``).
    """
    for reason, fails in _DPUUID_RULES:
        if fails(s) and (reject_email_like or reason != DPUUID_EMAIL):
            return reason
    return None


def check_hashed_email(s: str) -> bool:
    """True when ``s`` is a lower-case hex SHA-256 digest (c2c_id_ files, §2.3.2)."""
    return _HASHED_EMAIL.fullmatch(s) is not None
