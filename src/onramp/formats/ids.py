"""User-ID namespaces and their validation rules (SPEC §1.3–§1.5, §3.5).

The regular expressions are RE2-compatible, so the engine can use the very same
patterns in SQL (DuckDB's regexp functions are RE2) as the Python checks here.
"""

from __future__ import annotations

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
