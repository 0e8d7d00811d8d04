"""Processing receipts (SPEC §6, §11.3): counters, the text layout, the JSON object.

Pure: the service fills in counters and times; this module only does the
arithmetic and the rendering, so golden tests can pin both down.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from onramp.formats.timestamps import aware_utc, iso_z

# (JSON field, §6.2 text label) in receipt order. One table drives both renderings.
DATA_COUNTERS: tuple[tuple[str, str], ...] = (
    ("records_received", "Records received"),
    ("format_errors", "Format Errors"),
    ("invalid_aam_id", "Invalid AAM ID"),
    ("invalid_device_id", "Invalid Device ID"),
    ("no_matching_aam_id", "No Matching AAM ID"),
    ("no_trait_realized", "No Trait Realized"),
    ("records_processed", "Records processed"),
    ("stored_records", "Stored Records"),
    ("total_devices", "Total devices"),
    ("total_signals", "Total signals"),
    ("total_unused_signals", "Total unused signals"),
    ("total_realized_traits", "Total realized traits"),
    ("total_removed_traits", "Total removed traits"),
    ("total_traits_failed_validation", "Total traits failed validation"),
    ("total_users_with_failed_validation", "Total users that have traits which failed validation"),
)

# §6.4: ID-sync receipts have their own counters.
SYNC_COUNTERS: tuple[tuple[str, str], ...] = (
    ("records_received", "Records received"),
    ("format_errors", "Format Errors"),
    ("invalid_aam_id", "Invalid AAM ID"),
    ("invalid_device_id", "Invalid Device ID"),
    ("rows_stored", "Rows stored"),
    ("links_created", "Links created"),
    ("links_refreshed", "Links refreshed"),
    ("links_evicted", "Links evicted"),
)


@dataclass
class FileEntry:
    name: str
    uri: str
    status: str = "accepted"  # accepted | rejected
    reason: str | None = None
    duplicate: bool = False


@dataclass
class Receipt:
    receipt_id: str
    kind: str  # data | id_sync | rejected_files
    partner: int | None
    dpid: int | None
    target_dpid: int | None
    environment: str
    job_start: datetime
    job_end: datetime
    files: list[FileEntry] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    rejects: str | None = None
    warnings: list[str] = field(default_factory=list)

    def counter_table(self) -> tuple[tuple[str, str], ...]:
        return SYNC_COUNTERS if self.kind == "id_sync" else DATA_COUNTERS

    def to_json(self) -> dict:
        body: dict = {
            "receipt_id": self.receipt_id,
            "kind": self.kind,
            "partner": self.partner,
            "dpid": self.dpid,
            "target_dpid": self.target_dpid,
            "environment": self.environment,
            "files": [asdict(f) for f in self.files],
        }
        for key, _ in self.counter_table():
            body[key] = int(self.counters.get(key, 0))
        body["job_start"] = iso_z(self.job_start)
        body["job_end"] = iso_z(self.job_end)
        body["rejects"] = self.rejects
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body


def empty_counters(kind: str) -> dict[str, int]:
    table = SYNC_COUNTERS if kind == "id_sync" else DATA_COUNTERS
    return {key: 0 for key, _ in table}


def add_counters(total: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0) + int(value)


def check_identity(counters: dict[str, int]) -> None:
    """Stored = Processed − all failure buckets (§6.2, D-52). Raises if it does not hold."""
    failures = sum(counters.get(k, 0) for k in ("format_errors", "invalid_aam_id", "invalid_device_id", "no_matching_aam_id", "no_trait_realized"))
    if counters.get("stored_records", 0) != counters.get("records_processed", 0) - failures:
        raise AssertionError(f"receipt identity broken: {counters}")




def render_text(receipt: Receipt, *, platform_name: str = "Onramp") -> str:
    """The §6.2 plain-text receipt (also used for §6.4 sync receipts)."""
    lines = [
        f"Subject: {platform_name} Server-To-Server Processing Result:",
        f"Dear Partner: (ID:{receipt.partner if receipt.partner is not None else 'unknown'})",
        "We have received your Server-To-Server file delivery",
        "File name:",
    ]
    for f in receipt.files:
        suffix = f" [REJECTED: {f.reason}]" if f.status == "rejected" else ""
        if f.duplicate:
            suffix += " [DUPLICATE: already processed, no changes]"
        lines.append(f"{f.uri}{suffix}")
    for key, label in receipt.counter_table():
        lines.append(f"{label}: {int(receipt.counters.get(key, 0))}")
    lines.append(f"Job start time: {aware_utc(receipt.job_start).strftime('%Y-%m-%d %H:%M:%S')}")
    lines.append(f"Job end time: {aware_utc(receipt.job_end).strftime('%Y-%m-%d %H:%M:%S')}")
    for w in receipt.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines) + "\n"


def field_names() -> list[str]:
    return [f.name for f in fields(Receipt)]
