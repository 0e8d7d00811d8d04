"""Who may see what through the REST API. Pure: rules over principals, IDs and rows.

The rule of thumb: a partner token shows a partner nothing it does not already get
another way (receipts by mail, its own uploads), plus its own data in the platform.

- Receipts (and their reject files and ledger rows): those the partner uploaded, and those
  whose target data source it owns, i.e. exactly the receipts mailed to its contacts or
  to its data sources' notification lists (SPEC §6.1, §7.5).
- Profiles are platform-wide: many partners' traits meet on one device. A partner reads a
  profile only when it names it by one of its own data sources' IDs, and sees only its own
  traits, its own segments and the links to its own IDs and to platform UUIDs. A platform UUID
  (`0:<uuid>`) is not a partner's ID, so partners cannot walk the device space.
- Data-source settings (notification list, error sampling): the owner and the admin.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from onramp.formats.ids import PLATFORM_UUID_DPID
from onramp.service.api_tokens import Principal


def receipt_scope(who: Principal, alias: str = "r") -> tuple[str, list[Any]]:
    """A SQL predicate over ``receipts AS alias`` selecting what ``who`` may see."""
    if who.is_admin:
        return "true", []
    return (
        f"({alias}.partner = ? OR {alias}.target_dpid IN (SELECT dpid FROM data_sources WHERE owner_pid = ?))",
        [who.partner, who.partner],
    )


def may_manage_source(who: Principal, owner_pid: int | None) -> bool:
    return who.is_admin or (owner_pid is not None and owner_pid == who.partner)


def may_read_profile(who: Principal, dpid: int, owner_pid: int | None) -> bool:
    return who.is_admin or (dpid != 0 and owner_pid is not None and owner_pid == who.partner)


def partner_profile(body: dict, own_dpids: Container[int], own_segments: Container[int]) -> dict:
    """``body`` (the §11.1 profile JSON) reduced to what the owner of ``own_dpids`` may see."""
    def own(t: dict) -> bool:
        return t["data_source"] in own_dpids

    out = dict(body)
    out["traits"] = [t for t in body["traits"] if own(t)]
    if body.get("merged_traits") is not None:
        # `via` names another profile; keep it only when that profile is the partner's own.
        out["merged_traits"] = [t for t in body["merged_traits"] if own(t) and t["via"]["dpid"] in own_dpids]
    # Device IDs from global sources may come from other partners' syncs: only platform UUIDs.
    out["links"] = [link for link in body["links"] if link["dpid"] in own_dpids or link["dpid"] == PLATFORM_UUID_DPID]
    out["segments"] = [s for s in body["segments"] if s["sid"] in own_segments]
    return out
