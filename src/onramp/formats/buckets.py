"""The exclusive line buckets of SPEC §3.7, as one table.

Every non-blank line ends in exactly one bucket; the receipt counters, the reject
file and the docs all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Bucket(StrEnum):
    FORMAT_ERROR = "format_error"
    INVALID_AAM_ID = "invalid_aam_id"
    INVALID_DEVICE_ID = "invalid_device_id"
    NO_MATCHING_AAM_ID = "no_matching_aam_id"
    NO_TRAIT_REALIZED = "no_trait_realized"
    DISCARDED = "discarded"  # beyond the 200-lines-per-user cap: received, not processed
    STORED = "stored"


@dataclass(frozen=True)
class BucketInfo:
    bucket: Bucket
    receipt_label: str | None  # the §6.2 line, None when the bucket has no line of its own
    hint: str  # default fix hint for the reject file


BUCKETS: dict[Bucket, BucketInfo] = {
    b.bucket: b
    for b in (
        BucketInfo(Bucket.FORMAT_ERROR, "Format Errors", "write <user ID><TAB><item>,<item>,... (SPEC §3.4)"),
        BucketInfo(Bucket.INVALID_AAM_ID, "Invalid AAM ID", "platform UUIDs are exactly 38 digits, e.g. 07955261652886032950143702505894272138"),
        BucketInfo(Bucket.INVALID_DEVICE_ID, "Invalid Device ID", "send the raw device advertising ID in the exact case the OS exposes"),
        BucketInfo(Bucket.NO_MATCHING_AAM_ID, "No Matching AAM ID", "sync this ID first (HTTP /ibs: call or an adobe_id_ file); the line is not retried"),
        BucketInfo(Bucket.NO_TRAIT_REALIZED, "No Trait Realized", "use d_sid=<trait ID> of the target data source, or signals that match its onboarded trait rules"),
        BucketInfo(Bucket.DISCARDED, None, "send at most 200 lines per user ID per logical file"),
        BucketInfo(Bucket.STORED, "Stored Records", ""),
    )
}

# Buckets subtracted from Records processed to give Stored Records (§6.2, D-50, D-52).
FAILURE_BUCKETS: tuple[Bucket, ...] = (
    Bucket.FORMAT_ERROR,
    Bucket.INVALID_AAM_ID,
    Bucket.INVALID_DEVICE_ID,
    Bucket.NO_MATCHING_AAM_ID,
    Bucket.NO_TRAIT_REALIZED,
)
