"""Line outcome codes: what the engine records per line, and how it reads in a reject file.

The engine only stores a short code per line; this table turns it into the §3.7
bucket, a reason and a fix hint. Format Errors are explained in more detail by the
reference parser (``formats.lines``) when the reject file is written.
"""

from __future__ import annotations

from onramp.formats.buckets import Bucket

# code → (bucket, reason, hint)
LINE_CODES: dict[str, tuple[Bucket, str, str]] = {
    "too_long": (Bucket.FORMAT_ERROR, "line longer than {max_line_bytes} bytes", "split the line; keep lines under 100 KB"),
    "bad_utf8": (Bucket.FORMAT_ERROR, "line is not valid UTF-8", "write files as ASCII or UTF-8"),
    "control": (Bucket.FORMAT_ERROR, "control character in line", "remove control characters; only one TAB separates the user ID from the items"),
    "no_tab": (Bucket.FORMAT_ERROR, "no TAB after the user ID", "write <user ID><TAB><items>"),
    "empty_user_id": (Bucket.FORMAT_ERROR, "empty user ID", "put the user ID in column 1"),
    "empty_id_type": (Bucket.FORMAT_ERROR, "empty ID type", "ODC lines are <id type><TAB><user ID><TAB><items>"),
    "extra_tab": (Bucket.FORMAT_ERROR, "more than one TAB separator", "use commas between items; a TAB is not an empty value"),
    "odc_type": (Bucket.FORMAT_ERROR, "ODC ID type differs from the file's first row or is unknown", "use one ID type per file: idfa or android device id"),
    "dpuuid_colon": (Bucket.FORMAT_ERROR, "user ID contains ':' or '%3A'", "remove colons from user IDs"),
    "dpuuid_too_long": (Bucket.FORMAT_ERROR, "user ID longer than 1,024 bytes", "use IDs of at most 1,024 bytes"),
    "dpuuid_email": (Bucket.FORMAT_ERROR, "user ID looks like a raw email address (PII)", "send a SHA-256 hash or a random ID instead of the email"),
    "malformed_item": (Bucket.FORMAT_ERROR, "malformed item", "items are d_sid=N, d_unsid=N, N:0, N, ic=V or key=value"),
    "no_items": (Bucket.FORMAT_ERROR, "no items after the user ID", "add at least one item"),
    "invalid_aam_id": (Bucket.INVALID_AAM_ID, "platform UUID is not 38 digits", "platform UUIDs are exactly 38 digits, leading zeros kept"),
    "invalid_device_id": (Bucket.INVALID_DEVICE_ID, "not a valid {kind} for data source {dpid}", "send the raw ID as the OS exposes it: {kind}"),
    "no_matching_id": (Bucket.NO_MATCHING_AAM_ID, "no ID sync link for this user ID of data source {dpid}", "sync the ID first (HTTP /ibs: or an adobe_id_ file); this line is not retried"),
    "discarded": (Bucket.DISCARDED, "more than {max_lines_per_user} lines for this user ID in the logical file", "send at most {max_lines_per_user} lines per user ID"),
    "no_trait": (Bucket.NO_TRAIT_REALIZED, "no item realized or removed a trait of data source {owner}", "use d_sid=<trait ID> of data source {owner} or signals matching its onboarded trait rules"),
    "stored": (Bucket.STORED, "", ""),
    # ID-sync rows (§2.3.2)
    "trailing_ws": (Bucket.FORMAT_ERROR, "row ends with a TAB or a space", "remove trailing whitespace"),
    "column_count": (Bucket.FORMAT_ERROR, "wrong number of columns for the DPIDs in the file name", "write one TAB-separated column per DPID in the name"),
    "empty_field": (Bucket.FORMAT_ERROR, "empty field", "every column needs an ID"),
    "field_spaces": (Bucket.FORMAT_ERROR, "field with leading or trailing spaces", "remove spaces around IDs"),
    "bad_hashed_email": (Bucket.FORMAT_ERROR, "hashed email is not lower-case 64-hex SHA-256", "hash the trimmed, lower-cased email with SHA-256, lower-case hex"),
}

# Codes whose reason the reference parser can make more precise (item position, text).
DIAGNOSABLE = frozenset({"malformed_item", "no_items", "control", "extra_tab", "no_tab"})

FORMAT_ERROR_CODES = tuple(c for c, (b, _, _) in LINE_CODES.items() if b is Bucket.FORMAT_ERROR)
