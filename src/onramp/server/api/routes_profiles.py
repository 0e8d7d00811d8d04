"""One profile (SPEC §11.1 `onramp profile`), with the partner view of docs/api.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from onramp.errors import UsageError
from onramp.server.api.deps import ApiError, ApiUser, StoreSession, not_found, settings_of
from onramp.server.api.models import Env, ErrorBody, NotFoundBody, Profile
from onramp.server.api.tenancy import may_read_profile, partner_profile
from onramp.service.clock import system_clock
from onramp.service.profiles import read_profile
from onramp.taxonomy.models import MAX_ID

router = APIRouter(tags=["profiles"], responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})


@router.get(
    "/profiles/{dpid}/{user_id:path}",
    response_model=Profile,
    response_model_exclude_none=False,
    summary="One profile: traits, linked IDs, segments",
    description="`0/<uuid>` is a device profile (admin only); `<dpid>/<id>` a partner ID. "
    "Partner tokens read profiles only by their own data sources' IDs and see only their own traits and segments.",
    responses={404: {"model": NotFoundBody}},
)
def get_profile(
    request: Request,
    dpid: Annotated[int, Path(ge=0, le=MAX_ID, description="0 for platform UUIDs, else the data source of the ID.")],
    user_id: Annotated[str, Path(min_length=1, max_length=1024)],
    who: ApiUser,
    session: StoreSession,
    env: Env = "prod",
) -> dict:
    con = session.con
    owner = con.execute("SELECT owner_pid FROM data_sources WHERE dpid = ?", [dpid]).fetchone()
    if not may_read_profile(who, dpid, owner[0] if owner else None):
        # Same answer for unknown and foreign data sources: a partner learns nothing about others.
        raise ApiError(403, f"data source {dpid} is not one of yours", "address profiles by your own data sources' IDs")
    settings = settings_of(request)
    try:
        view = read_profile(con, f"{dpid}:{user_id}", env=env, now=system_clock(),
                            link_ttl_days=settings.identity.link_ttl_days, max_hops=settings.identity.max_resolution_hops)
    except UsageError as exc:
        raise not_found(exc.message, exc.hint) from None
    if not view.known:
        raise not_found(f"profile {dpid}:{user_id}", "check the DPID and ID; device-level IDs need an ID sync first")
    body = {
        "profile": {"dpid": view.ns, "id": view.id}, "traits": view.traits, "links": view.links, "segments": view.segments,
        "merged_traits": [{**{k: t[k] for k in ("sid", "data_source", "realized_at", "expires_at")}, "via": t["profile"]}
                          for t in view.merged_traits] if view.ns == 0 or view.merged_traits else None,
    }
    if who.is_admin:
        return body
    own_dpids = {r[0] for r in con.execute("SELECT dpid FROM data_sources WHERE owner_pid = ?", [who.partner]).fetchall()}
    own_segments = {r[0] for r in con.execute("SELECT sid FROM segments WHERE owner = ?", [who.partner]).fetchall()}
    return partner_profile(body, own_dpids, own_segments)
