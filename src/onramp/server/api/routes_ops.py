"""Operations: liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from onramp.server.api.deps import ApiError, principal
from onramp.server.api.models import ErrorBody, Health
from onramp.server.metrics import REGISTRY
from onramp.service.api_tokens import Principal

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness (no token needed)")
def healthz() -> Health:
    # Deliberately touches nothing: a job holding the store must not make the server look dead.
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
               401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
def metrics(who: Principal = Depends(principal)) -> Response:
    # Volumes per environment are business data: admin or a metrics-only token.
    if who.role not in ("admin", "metrics"):
        raise ApiError(403, "partner tokens may not read platform metrics",
                       "use the admin token or `onramp tokens create --metrics`")
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
