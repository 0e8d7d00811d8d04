"""Reading one profile (SPEC §11.1 `onramp profile`): traits, links, merged traits, segments."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb

from onramp.engine.apply import EXPIRED
from onramp.engine.resolve import edges_sql
from onramp.errors import UsageError
from onramp.formats.ids import is_device_namespace


@dataclass
class ProfileView:
    ns: int
    id: str
    traits: list[dict] = field(default_factory=list)
    merged_traits: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.traits or self.links or self.merged_traits)


def parse_profile_ref(ref: str) -> tuple[int, str]:
    dpid, sep, pid = ref.partition(":")
    if not sep or not dpid.isdigit() or not pid:
        raise UsageError(f"'{ref}' is not DPID:ID", hint="write e.g. 0:07955261652886032950143702505894272138 or 22:CRM123")
    return int(dpid), pid


def _traits(con, env: str, nodes: list[tuple[int, str]], now: datetime) -> list[dict]:
    if not nodes:
        return []
    con.execute("CREATE OR REPLACE TEMP TABLE _pnodes (ns INTEGER, id VARCHAR)")
    con.executemany("INSERT INTO _pnodes VALUES (?, ?)", nodes)
    rows = con.execute(
        f"""SELECT r.ns, r.id, r.sid, t.data_source, r.realized_at,
                   CASE WHEN t.ttl_days = 0 THEN NULL ELSE date_trunc('day', r.realized_at) + to_days(t.ttl_days + 1) END
              FROM realizations r JOIN _pnodes p ON r.ns = p.ns AND r.id = p.id JOIN traits t ON t.sid = r.sid
             WHERE r.env = $env AND NOT {EXPIRED} ORDER BY r.sid""",
        {"env": env, "now": now},
    ).fetchall()
    return [{"profile": {"dpid": r[0], "id": r[1]}, "sid": r[2], "data_source": r[3], "realized_at": r[4], "expires_at": r[5]} for r in rows]


def read_profile(con: duckdb.DuckDBPyConnection, ref: str, *, env: str, now: datetime, link_ttl_days: int = 120, max_hops: int = 3) -> ProfileView:
    dpid, pid = parse_profile_ref(ref)
    src = con.execute("SELECT id_type, inbound_id_type FROM data_sources WHERE dpid = ?", [dpid]).fetchone()
    ns, node = dpid, pid
    if dpid != 0 and src is None:
        raise UsageError(f"data source {dpid} does not exist", hint="use 0:<uuid> or a declared DPID")
    if src and src[1] == "platform_uuid":
        ns = 0
    elif src and not is_device_namespace(dpid) and src[0] != "cross_device":
        # Device-level customer ID: show the device it resolves to (§3.8.3).
        con.execute("CREATE OR REPLACE TEMP TABLE _pref AS SELECT ? AS uid", [pid])
        from onramp.engine.resolve import resolve_ids

        resolve_ids(con, source="_pref", dpid=dpid, env=env, now=now, link_ttl_days=link_ttl_days, max_hops=max_hops)
        hit = con.execute("SELECT ns, pid FROM resolved").fetchone()
        if hit:
            ns, node = hit
    view = ProfileView(ns, node)
    since = now - timedelta(days=link_ttl_days)
    view.links = [
        {"dpid": r[0], "id": r[1], "last_seen": r[2]}
        for r in con.execute(
            f"SELECT t_dpid, t_id, last_seen FROM ({edges_sql()}) WHERE s_dpid = $dpid AND s_id = $id ORDER BY last_seen DESC",
            {"env": env, "since": since, "dpid": ns, "id": node},
        ).fetchall()
    ]
    own = _traits(con, env, [(ns, node)], now)
    view.traits = [{k: v for k, v in t.items() if k != "profile"} for t in own]
    if is_device_namespace(ns):
        customers = _linked_customers(con, env, since, ns, node, max_hops)
        view.merged_traits = _traits(con, env, customers, now)
    view.segments = _segments(con, view, now)
    return view


def _linked_customers(con, env: str, since: datetime, ns: int, node: str, max_hops: int) -> list[tuple[int, str]]:
    """Customer (cross-device) profiles within ``max_hops`` links of a device (§5.5)."""
    seen = {(ns, node)}
    frontier = [(ns, node)]
    found: list[tuple[int, str]] = []
    cross = {r[0] for r in con.execute("SELECT dpid FROM data_sources WHERE id_type = 'cross_device'").fetchall()}
    for _ in range(max_hops):
        nxt = []
        for d, i in frontier:
            for t_dpid, t_id in con.execute(
                f"SELECT t_dpid, t_id FROM ({edges_sql()}) WHERE s_dpid = $d AND s_id = $i", {"env": env, "since": since, "d": d, "i": i}
            ).fetchall():
                if (t_dpid, t_id) in seen:
                    continue
                seen.add((t_dpid, t_id))
                nxt.append((t_dpid, t_id))
                if t_dpid in cross:
                    found.append((t_dpid, t_id))
        frontier = nxt
    return found


def _segments(con, view: ProfileView, now: datetime) -> list[dict]:
    from onramp.rules.segments import evaluate_segment, parse_segment_expression

    own: dict[int, list[datetime]] = defaultdict(list)
    for t in view.traits:
        own[t["sid"]].append(t["realized_at"])
    merged = defaultdict(list, {k: list(v) for k, v in own.items()})
    for t in view.merged_traits:
        merged[t["sid"]].append(t["realized_at"])
    out = []
    for sid, expr, merge_rule in con.execute("SELECT sid, expression, merge_rule FROM segments ORDER BY sid").fetchall():
        realizations = own if merge_rule == "device_only" else merged
        if realizations and evaluate_segment(parse_segment_expression(expr), realizations, now):
            out.append({"sid": sid, "since": None})
    return out
