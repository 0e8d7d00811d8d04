"""Stored receipts (SPEC §6, §11.3) and their reject files (§11.4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Path as PathParam, Query, Request, Response
from fastapi.responses import FileResponse

from onramp.server.api.deps import ApiUser, Store, StoreSession, not_found, settings_of
from onramp.server.api.models import Env, ErrorBody, NotFoundBody, ReceiptObject
from onramp.server.api.tenancy import receipt_scope
from onramp.service.api_tokens import Principal

router = APIRouter(tags=["receipts"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})

ReceiptId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_.-]{1,128}$", description="From a receipt or the ledger.")]
_NOT_YOURS = "check the receipt ID; partner tokens see only their own receipts"


@router.get("/receipts", response_model=list[ReceiptObject], summary="Receipts, newest first")
def list_receipts(
    who: ApiUser,
    session: StoreSession,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
    env: Env | None = None,
    kind: str | None = Query(None, description="data | id_sync | rejected_files"),
) -> list[dict]:
    scope, params = receipt_scope(who)
    where, extra = [scope], []
    if env is not None:
        where.append("r.env = ?")
        extra.append(env)
    if kind is not None:
        where.append("r.kind = ?")
        extra.append(kind)
    rows = session.con.execute(
        f"""SELECT r.body FROM receipts r WHERE {' AND '.join(where)}
             ORDER BY r.created_at DESC, r.receipt_id LIMIT ? OFFSET ?""",
        [*params, *extra, limit, offset],
    ).fetchall()
    return [json.loads(b) for (b,) in rows]


def _receipt_row(session: Store, who: Principal, receipt_id: str) -> tuple[str, str]:
    scope, params = receipt_scope(who)
    row = session.con.execute(
        f"SELECT r.body, r.text FROM receipts r WHERE r.receipt_id = ? AND {scope}", [receipt_id, *params]
    ).fetchone()
    if row is None:
        # Same answer whether it does not exist or is another partner's: IDs reveal nothing.
        raise not_found(f"receipt {receipt_id!r}", _NOT_YOURS)
    return row


@router.get("/receipts/{receipt_id}", response_model=ReceiptObject, summary="One receipt (§11.3 object)",
            responses={404: {"model": NotFoundBody}})
def get_receipt(receipt_id: ReceiptId, who: ApiUser, session: StoreSession) -> dict:
    return json.loads(_receipt_row(session, who, receipt_id)[0])


@router.get("/receipts/{receipt_id}/text", response_class=Response, summary="One receipt as the §6.2 text",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, 404: {"model": NotFoundBody}})
def get_receipt_text(receipt_id: ReceiptId, who: ApiUser, session: StoreSession) -> Response:
    return Response(_receipt_row(session, who, receipt_id)[1], media_type="text/plain; charset=utf-8")


@router.get("/receipts/{receipt_id}/rejects", response_class=FileResponse,
            summary="The receipt's reject file (§11.4, gzip TSV)",
            responses={200: {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}},
                       404: {"model": NotFoundBody}})
def get_rejects(receipt_id: ReceiptId, request: Request, who: ApiUser, session: StoreSession) -> FileResponse:
    body = json.loads(_receipt_row(session, who, receipt_id)[0])
    rel = body.get("rejects")
    if not rel:
        raise not_found(f"reject file of receipt {receipt_id!r}", "every line of this receipt was stored")
    root = (Path(settings_of(request).data_dir) / "receipts").resolve()
    path = (root.parent / rel).resolve()
    # The path comes from the store, but a reject file must never lead outside receipts/.
    if not path.is_relative_to(root) or not path.is_file():
        raise not_found(f"reject file of receipt {receipt_id!r}",
                        "it may have been removed by retention; the receipt counters still hold")
    return FileResponse(path, media_type="application/gzip", filename=f"{receipt_id}-rejects.tsv.gz")
