"""Prometheus metrics shared by the server, the watcher and jobs (`GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FILES = Counter("onramp_files_total", "Inbound files processed, by environment and status.", ["env", "status"], registry=REGISTRY)
LINES = Counter("onramp_lines_total", "Inbound lines, by environment and receipt bucket.", ["env", "bucket"], registry=REGISTRY)
JOB_SECONDS = Histogram("onramp_job_duration_seconds", "Wall time of inbound jobs.", ["env"], registry=REGISTRY,
                        buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800))
QUEUE_DEPTH = Gauge("onramp_queue_depth", "Settled logical files waiting to be processed.", ["env"], registry=REGISTRY)
IDSYNC_REQUESTS = Counter("onramp_idsync_requests_total", "ID-sync requests, by HTTP status.", ["status"], registry=REGISTRY)
API_AUTH_FAILURES = Counter("onramp_api_auth_failures_total", "REST API requests refused for a missing, unknown or revoked token.",
                            registry=REGISTRY)

# Receipt counter -> line bucket (SPEC §3.7); `discarded` is received minus processed.
_BUCKET_OF_COUNTER = {
    "format_errors": "format_error",
    "invalid_aam_id": "invalid_aam_id",
    "invalid_device_id": "invalid_device_id",
    "no_matching_aam_id": "no_matching_aam_id",
    "no_trait_realized": "no_trait_realized",
    "stored_records": "stored",
}


def record_job(env: str, receipts: list, seconds: float) -> None:
    """Count one finished job's files and data lines (receipt objects or ``Receipt``s)."""
    JOB_SECONDS.labels(env).observe(seconds)
    for r in receipts:
        body = r.to_json() if hasattr(r, "to_json") else r
        for f in body["files"]:
            FILES.labels(env, f["status"]).inc()  # the receipt's file status: accepted | rejected
        if body.get("kind") == "id_sync":
            continue
        for counter, bucket in _BUCKET_OF_COUNTER.items():
            LINES.labels(env, bucket).inc(body.get(counter, 0))
        LINES.labels(env, "discarded").inc(max(0, body.get("records_received", 0) - body.get("records_processed", 0)))
