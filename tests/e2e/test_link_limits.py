"""SPEC §1.7 link limits: past a limit the oldest links are evicted and counted in the receipt."""

from __future__ import annotations

from tests.conftest import write

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
data_sources:
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
  - {dpid: 24, owner: 7, name: hashed emails, id_type: cross_device, inbound_id_type: customer_id}
"""
GAID = "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"
T1, T2 = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"


def linked(onramp, ref: str, now: str) -> set[str]:
    res = onramp("profile", "--json", ref, now=now)
    assert res.code in (0, 1), res.stderr
    return {link["id"] for link in res.json()["links"]} if res.code == 0 else set()


def test_a_daid_keeps_the_ten_most_recent_cross_device_ids_per_data_source(onramp, drop):
    onramp.apply(TAXONOMY)
    first = write(drop, "adobe_id_20914_22_1700000000.sync", [f"{GAID}\tCRM{i}" for i in range(10)])
    r1 = onramp("ingest", "--json", str(first), now=T1).json()[0]
    assert (r1["links_created"], r1["links_evicted"]) == (10, 0)
    second = write(drop, "adobe_id_20914_22_1700000001.sync", [f"{GAID}\tCRM10"])
    r2 = onramp("ingest", "--json", str(second), now=T2).json()[0]
    assert (r2["links_created"], r2["links_evicted"]) == (1, 1)
    ids = linked(onramp, f"20914:{GAID}", T2)
    assert len(ids) == 10 and "CRM10" in ids
    # Ties at T1 are broken by ID, highest kept: CRM0 is the one that went.
    assert "CRM0" not in ids


def test_c2c_keeps_ten_hashed_emails_per_customer_id(onramp, drop):
    onramp.apply(TAXONOMY)
    hashes = [f"{i:064x}" for i in range(12)]
    f = write(drop, "c2c_id_22_24_1700000000.sync", [f"CRM1\t{h}" for h in hashes[:11]])
    r1 = onramp("ingest", "--json", str(f), now=T1).json()[0]
    assert (r1["links_created"], r1["links_evicted"]) == (11, 1)
    g = write(drop, "c2c_id_22_24_1700000001.sync", [f"CRM1\t{hashes[11]}"])
    r2 = onramp("ingest", "--json", str(g), now=T2).json()[0]
    assert r2["links_evicted"] == 1
    ids = linked(onramp, "22:CRM1", T2)
    assert len(ids) == 10 and hashes[11] in ids


def test_under_the_limits_nothing_is_evicted(onramp, drop):
    onramp.apply(TAXONOMY)
    f = write(drop, "adobe_id_20914_22_1700000000.sync", [f"{GAID}\tCRM{i}" for i in range(3)])
    r = onramp("ingest", "--json", str(f), now=T1).json()[0]
    assert (r["links_created"], r["links_evicted"]) == (3, 0)
    assert linked(onramp, f"20914:{GAID}", T1) == {"CRM0", "CRM1", "CRM2"}
