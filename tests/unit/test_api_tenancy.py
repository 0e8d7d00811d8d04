"""What a token may see (server.api.tenancy) and how tokens look (service.api_tokens): pure rules."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from onramp.server.api.tenancy import may_manage_source, may_read_profile, partner_profile, receipt_scope
from onramp.service.api_tokens import Principal, new_token, token_hash

ADMIN = Principal("admin")
ACME = Principal("partner", partner=7, token_id="abcd1234")
T = datetime(2026, 11, 22, 10)

PROFILE = {
    "profile": {"dpid": 0, "id": "07955261652886032950143702505894272138"},
    "traits": [{"sid": 101, "data_source": 21, "realized_at": T, "expires_at": None},
               {"sid": 103, "data_source": 55, "realized_at": T, "expires_at": None}],
    "merged_traits": [{"sid": 201, "data_source": 22, "realized_at": T, "expires_at": None, "via": {"dpid": 22, "id": "c1"}},
                      {"sid": 301, "data_source": 66, "realized_at": T, "expires_at": None, "via": {"dpid": 66, "id": "z"}}],
    "links": [{"dpid": 21, "id": "u1", "last_seen": T}, {"dpid": 55, "id": "x1", "last_seen": T},
              {"dpid": 0, "id": "0795", "last_seen": T}, {"dpid": 20914, "id": "idfa", "last_seen": T}],
    "segments": [{"sid": 5001, "since": None}, {"sid": 5002, "since": None}],
}


def test_partner_profile_keeps_only_own_data():
    view = partner_profile(PROFILE, own_dpids={21, 22}, own_segments={5001})
    assert [t["sid"] for t in view["traits"]] == [101]
    assert [t["sid"] for t in view["merged_traits"]] == [201]
    # Global device IDs may come from other partners' syncs; platform UUIDs are the partner's sync target.
    assert [(link["dpid"], link["id"]) for link in view["links"]] == [(21, "u1"), (0, "0795")]
    assert [s["sid"] for s in view["segments"]] == [5001]
    assert PROFILE["traits"][1]["sid"] == 103, "the input is not modified"


def test_partner_profile_without_merged_traits():
    body = {**PROFILE, "merged_traits": None}
    assert partner_profile(body, {21}, set())["merged_traits"] is None


@pytest.mark.parametrize(("who", "dpid", "owner", "allowed"), [
    (ADMIN, 0, None, True), (ADMIN, 55, 9, True),
    (ACME, 21, 7, True), (ACME, 55, 9, False), (ACME, 0, None, False), (ACME, 4242, None, False),
])
def test_who_may_read_a_profile(who, dpid, owner, allowed):
    assert may_read_profile(who, dpid, owner) is allowed


def test_who_may_manage_a_source():
    assert may_manage_source(ADMIN, None) and may_manage_source(ACME, 7)
    assert not may_manage_source(ACME, 9) and not may_manage_source(ACME, None)
    assert not may_manage_source(Principal("metrics"), 7)


def test_receipt_scope():
    assert receipt_scope(ADMIN) == ("true", [])
    sql, params = receipt_scope(ACME, alias="x")
    assert "x.partner = ?" in sql and "x.target_dpid IN" in sql and params == [7, 7]


def test_tokens_are_random_and_stored_hashed():
    (id1, t1), (id2, t2) = new_token(), new_token()
    assert re.fullmatch(r"onr_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", t1) and t1.startswith(f"onr_{id1}_")
    assert id1 != id2 and t1 != t2
    assert token_hash(t1) == token_hash(t1) != token_hash(t2) and len(token_hash(t1)) == 64 and t1 not in token_hash(t1)
