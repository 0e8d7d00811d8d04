"""Per-data-source operations settings: notification lists (§7.5) and error sampling (§7.4).

Both are also taxonomy fields (`notify`, `error_sampling`); a later `taxonomy apply` of a
file that declares the data source sets them as the file says (taxonomy as code).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request

from onramp.server.api.deps import ApiError, ApiUser, Store, StoreSession, not_found, settings_of
from onramp.server.api.models import (
    BadRequestBody,
    DataSource,
    ErrorBody,
    ErrorSampling,
    ErrorSamplingChange,
    NotFoundBody,
    NotifyList,
)
from onramp.server.api.tenancy import may_manage_source
from onramp.service.api_tokens import Principal
from onramp.service.clock import system_clock
from onramp.taxonomy.models import MAX_ID
from onramp.taxonomy.rows import sampling_until

router = APIRouter(tags=["data sources"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})

Dpid = Annotated[int, Path(ge=1, le=MAX_ID, description="Data source ID.")]
_COLUMNS = "dpid, owner_pid, name, notify, error_sampling_until"


def _sampling(until: datetime | None, now: datetime) -> dict:
    active = until is not None and until > now
    return {"enabled": active, "until": until if active else None}


def _as_model(row: tuple, now: datetime) -> dict:
    dpid, owner, name, notify, until = row
    return {"dpid": dpid, "owner": owner, "name": name, "notify": list(notify), "error_sampling": _sampling(until, now)}


def _own_source(session: Store, who: Principal, dpid: int) -> tuple:
    row = session.con.execute(f"SELECT {_COLUMNS} FROM data_sources WHERE dpid = ?", [dpid]).fetchone()
    if row is None:
        if who.is_admin:
            raise not_found(f"data source {dpid}", "declare it with POST /api/v1/taxonomy")
        row = (dpid, None, None, None, None)  # answer as for a foreign source: existence is not revealed
    if not may_manage_source(who, row[1]):
        raise ApiError(403, f"data source {dpid} is not one of yours", "partner tokens manage only their own data sources")
    return row


@router.get("/data-sources", response_model=list[DataSource], summary="Data sources you manage")
def list_sources(who: ApiUser, session: StoreSession) -> list[dict]:
    where, params = ("true", []) if who.is_admin else ("owner_pid = ?", [who.partner])
    rows = session.con.execute(f"SELECT {_COLUMNS} FROM data_sources WHERE {where} ORDER BY dpid", params).fetchall()
    now = system_clock()
    return [_as_model(r, now) for r in rows]


@router.get("/data-sources/{dpid}/notify", response_model=NotifyList, summary="Notification list (§7.5)",
            responses={404: {"model": NotFoundBody}})
def get_notify(dpid: Dpid, who: ApiUser, session: StoreSession) -> dict:
    return {"notify": list(_own_source(session, who, dpid)[3])}


@router.put("/data-sources/{dpid}/notify", response_model=NotifyList, summary="Replace the notification list (§7.5)",
            responses={400: {"model": BadRequestBody}, 404: {"model": NotFoundBody}, 409: {"model": ErrorBody}})
def put_notify(change: NotifyList, dpid: Dpid, who: ApiUser,
               session: StoreSession) -> dict:
    _own_source(session, who, dpid)
    notify = list(dict.fromkeys(change.notify))  # order kept, repeats dropped
    session.con.execute("UPDATE data_sources SET notify = ? WHERE dpid = ?", [notify, dpid])
    return {"notify": notify}


@router.get("/data-sources/{dpid}/error-sampling", response_model=ErrorSampling, summary="Error-sampling switch (§7.4)",
            responses={404: {"model": NotFoundBody}})
def get_sampling(dpid: Dpid, who: ApiUser, session: StoreSession) -> dict:
    return _sampling(_own_source(session, who, dpid)[4], system_clock())


@router.put("/data-sources/{dpid}/error-sampling", response_model=ErrorSampling,
            summary="Switch error sampling on (for reports.error_sampling_days) or off (§7.4)",
            responses={400: {"model": BadRequestBody}, 404: {"model": NotFoundBody}, 409: {"model": ErrorBody}})
def put_sampling(change: ErrorSamplingChange, request: Request, dpid: Dpid, who: ApiUser,
                 session: StoreSession) -> dict:
    current = _own_source(session, who, dpid)[4]
    now = system_clock()
    until = sampling_until(change.enabled, current, now, settings_of(request).reports.error_sampling_days)
    session.con.execute("UPDATE data_sources SET error_sampling_until = ? WHERE dpid = ?", [until, dpid])
    return _sampling(until, now)
