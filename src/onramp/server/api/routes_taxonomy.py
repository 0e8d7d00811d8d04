"""Taxonomy as code over HTTP: export (SPEC §11.1 `taxonomy export`) and apply (§11.2)."""

from __future__ import annotations

import json
from typing import Literal

import yaml
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from onramp.errors import TaxonomyError
from onramp.server.api.deps import AdminUser, ApiError, Store, StoreSession, settings_of
from onramp.server.api.models import ErrorBody, TaxonomyApplied, TaxonomyErrorBody
from onramp.service.clock import system_clock
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.export import export_taxonomy
from onramp.taxonomy.load import load_taxonomy

router = APIRouter(tags=["taxonomy"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})

YAML = "application/yaml"
MAX_BODY_BYTES = 64 * 1024 * 1024  # a large account's taxonomy is a few MB


class TaxonomyInvalid(ApiError):
    def __init__(self, message: str, problems: list[dict]):
        super().__init__(422, message, "fix each problem at its path; nothing was changed")
        self.detail["problems"] = problems


# Both media types carry the same §11.2 document (a mapping of sections).
_DOCUMENT = {"type": "object", "description": "The §11.2 taxonomy document."}
_BODY = {"required": True, "content": {YAML: {"schema": _DOCUMENT}, "application/json": {"schema": _DOCUMENT}}}


@router.get(
    "/taxonomy",
    summary="Export the taxonomy (admin)",
    response_class=Response,
    responses={200: {"content": {YAML: {"schema": _DOCUMENT}, "application/json": {"schema": _DOCUMENT}}}},
)
def export(
    _: AdminUser,
    session: StoreSession,
    format: Literal["yaml", "json"] = Query("yaml", description="yaml (§11.2 file) or json (the same document)."),
) -> Response:
    text = export_taxonomy(session.con, now=system_clock())
    document = yaml.safe_load(text)
    if format == "json":
        return Response(json.dumps(document or {}), media_type="application/json")
    if document is None:
        text += "{}\n"  # an empty store is still a mapping for YAML clients, not a null document
    return Response(text, media_type=YAML)


@router.post(
    "/taxonomy",
    summary="Apply a taxonomy file (admin; idempotent, all or nothing)",
    response_model=TaxonomyApplied,
    openapi_extra={"requestBody": _BODY},
    responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody}, 413: {"model": ErrorBody},
               422: {"model": TaxonomyErrorBody}},
)
async def apply(request: Request, _: AdminUser, session: StoreSession) -> TaxonomyApplied:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "taxonomy file too large", f"send at most {MAX_BODY_BYTES // 2**20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not UTF-8 (byte {exc.start})", "send the YAML or JSON file as UTF-8") from None
    settings = settings_of(request)
    # JSON is YAML, so one loader serves both content types with the same problem paths.
    return await run_in_threadpool(_apply, session, text, settings.reports.error_sampling_days)


def _apply(session: Store, text: str, sampling_days: int) -> TaxonomyApplied:
    try:
        taxonomy, warnings = load_taxonomy(text)
        summary = apply_taxonomy(session.con, taxonomy, now=system_clock(), error_sampling_days=sampling_days)
    except TaxonomyError as exc:
        problems = [{"path": p.path, "message": p.message, "hint": p.hint} for p in exc.problems]
        raise TaxonomyInvalid(exc.message, problems) from None
    return TaxonomyApplied(
        applied=summary.to_dict(), created=summary.created, updated=summary.updated,
        unchanged=summary.unchanged, warnings=[str(w) for w in warnings],
    )
