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
