"""The REST API (issue #3, docs/api.md): one router the app factory mounts.

``/healthz`` and ``/metrics`` sit at the root; everything else under ``/api/v1``. Routes
read their settings from ``request.app.state.settings`` (set by ``create_app``), open the
store per request, and answer errors as ``{"detail": {"message": ..., "hint": ...}}``.
"""

from __future__ import annotations

from fastapi import APIRouter

from onramp.server.api import (
    routes_data_sources,
    routes_files,
    routes_ops,
    routes_profiles,
    routes_receipts,
    routes_taxonomy,
)
from onramp.server.api.models import ErrorBody

PREFIX = "/api/v1"
# Any route that opens the store may find it held by another process (deps.Store).
_BUSY = {503: {"model": ErrorBody, "description": "The store is busy; retry after `Retry-After` seconds."}}

router = APIRouter()
router.include_router(routes_ops.router)
for _module in (routes_taxonomy, routes_receipts, routes_profiles, routes_files, routes_data_sources):
    router.include_router(_module.router, prefix=PREFIX, responses=_BUSY)

__all__ = ["PREFIX", "router"]
