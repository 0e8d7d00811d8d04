"""SPEC §3.8.5 worked examples (.sync, .overwrite, removals), §1.8 identity rules,
§2.3.3 multi-hop resolution, TTL (§4.7) and beta isolation, through the real CLI."""

from __future__ import annotations

from tests.conftest import write

TAXONOMY = """
partners:
  - {pid: 7, name: acme}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 21, owner: 7, name: cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 22, owner: 7, name: crm, id_type: cross_device, inbound_id_type: customer_id}
  - {dpid: 23, owner: 7, name: uuids, id_type: cookie, inbound_id_type: platform_uuid}
  - {dpid: 55, owner: 9, name: other, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 67890, owner: 7, name: second hop, id_type: cookie, inbound_id_type: customer_id}
traits:
  - {sid: 1, name: a, data_source: 22, type: onboarded}
  - {sid: 2, name: b, data_source: 22, type: onboarded}
  - {sid: 3, name: c, data_source: 22, type: onboarded}
  - {sid: 4, name: d, data_source: 22, type: onboarded}
  - {sid: 5, name: e, data_source: 22, type: onboarded}
  - {sid: 9, name: t9, data_source: 55, type: onboarded}
  - {sid: 11, name: one day, data_source: 23, type: onboarded, ttl_days: 1}
  - {sid: 12, name: cookie trait, data_source: 21, type: onboarded}
  - {sid: 13, name: hop trait, data_source: 67890, type: onboarded}
access_mappings:
  - {pid: 7, dpid: 55}
"""


def traits(onramp, ref, now=None):
    res = onramp("profile", "--json", ref, now=now)
    if res.code == 1:
        return set()
    assert res.code == 0, res.stderr
    return {t["sid"] for t in res.json()["traits"]}


def test_sync_then_overwrite_then_removal(onramp, drop):
    onramp.apply(TAXONOMY)
    # t9 belongs to another data source (55) and must survive the overwrite of 22.
    onramp("ingest", str(write(drop, "ftp_dpm_55_1699990000.sync", ["visitor123\td_sid=9"])), "--partner", "7")
    # 55 is a cookie source: no link → not stored; use the CRM source for t9's profile instead.
    onramp("ingest", str(write(drop, "ftp_dpm_22_1699990001.sync", ["visitor123\td_sid=1,d_sid=2,d_sid=3"])), check=True)
    assert traits(onramp, "22:visitor123") == {1, 2, 3}
    res = onramp("ingest", "--json", str(write(drop, "ftp_dpm_22_1700086400.overwrite", ["visitor123\td_sid=3,d_sid=4,d_sid=5"])))
    assert res.json()[0]["total_removed_traits"] == 2
    assert traits(onramp, "22:visitor123") == {3, 4, 5}
    res = onramp("ingest", "--json", str(write(drop, "ftp_dpm_22_1700172800.sync", ["visitor123\td_unsid=4, 5:0"])))
    assert res.json()[0]["total_removed_traits"] == 2
    assert traits(onramp, "22:visitor123") == {3}


def test_overwrite_realizing_nothing_leaves_user_untouched(onramp, drop):
    onramp.apply(TAXONOMY)
    onramp("ingest", str(write(drop, "ftp_dpm_22_1700000000.sync", ["u1\td_sid=1", "u2\td_sid=2"])), check=True)
    res = onramp("ingest", "--json", str(write(drop, "ftp_dpm_22_1700000100.overwrite", ["u1\td_unsid=1", "u3\td_sid=3,,d_sid=4"])))
    (r,) = res.json()
    assert r["no_trait_realized"] == 1 and r["stored_records"] == 1
    assert traits(onramp, "22:u1") == {1}  # D-35
    assert traits(onramp, "22:u2") == {2}  # absent users untouched
    assert traits(onramp, "22:u3") == {3, 4}


def test_overwrite_two_lines_union_and_last_op_wins(onramp, drop):
    onramp.apply(TAXONOMY)
    onramp("ingest", str(write(drop, "ftp_dpm_22_1700000000.overwrite", ["v\td_sid=1", "v\td_sid=2"])), check=True)
    assert traits(onramp, "22:v") == {1, 2}
    onramp("ingest", str(write(drop, "ftp_dpm_22_1700000100.sync", ["w\td_sid=5,d_unsid=5", "x\td_unsid=5,d_sid=5"])), check=True)
    assert traits(onramp, "22:w") == set()
    assert traits(onramp, "22:x") == {5}


def test_device_level_needs_sync_and_multi_hop_in_any_order(onramp, drop):
    onramp.apply(TAXONOMY)
    uuid = "68079982765673198504052656074456196039"
    hop2 = write(drop, "adobe_id_21_67890_1477846458.sync", ["XYZ3017D_2kzk\t4598060374"])
    data = write(drop, "ftp_dpm_67890_1700000000.sync", ["4598060374\td_sid=13"])
    # Second-hop file first: the link is stored, but nothing reaches a device yet.
    res = onramp("ingest", "--json", str(hop2), str(data))
    data_receipt = next(r for r in res.json() if r["kind"] == "data")
    assert data_receipt["no_matching_aam_id"] == 1
    hop1 = write(drop, "adobe_id_0_21_1476312152.sync", [f"{uuid}\tXYZ3017D_2kzk"])
    sync_receipt = onramp("ingest", "--json", str(hop1)).json()[0]
    assert sync_receipt["kind"] == "id_sync" and sync_receipt["links_created"] == 1 and sync_receipt["rows_stored"] == 1
    again = write(drop, "ftp_dpm_67890_1700000001.sync", ["4598060374\td_sid=13"])
    r = onramp("ingest", "--json", str(again)).json()[0]
    assert r["stored_records"] == 1 and r["total_devices"] == 1
    assert traits(onramp, f"0:{uuid}") == {13}
    assert traits(onramp, "67890:4598060374") == {13}  # resolved through the graph


def test_cross_device_traits_merge_onto_linked_device(onramp, drop):
    onramp.apply(TAXONOMY)
    uuid = "0" * 37 + "7"
    onramp("ingest", str(write(drop, "adobe_id_0_22_1700000000.sync", [f"{uuid}\tCRM1"])), check=True)
    onramp("ingest", str(write(drop, "ftp_dpm_22_1700000001.sync", ["CRM1\td_sid=1"])), check=True)
    body = onramp("profile", "--json", f"0:{uuid}").json()
    assert body["traits"] == []  # D-09: stored on the customer profile only
    assert [t["sid"] for t in body["merged_traits"]] == [1]


def test_ttl_expiry_formula(onramp, drop):
    onramp.apply(TAXONOMY)
    uuid = "1" * 38
    f = write(drop, "ftp_dpm_23_1700000000.sync", [f"{uuid}\td_sid=11"])
    onramp("ingest", str(f), check=True, now="2026-11-22T23:00:00Z")
    body = onramp("profile", "--json", f"0:{uuid}", now="2026-11-23T10:00:00Z").json()
    assert body["traits"][0]["expires_at"] == "2026-11-24T00:00:00Z"  # 25 h after 23:00 (§4.7)
    assert traits(onramp, f"0:{uuid}", now="2026-11-24T00:00:00Z") == set()


def test_realizing_a_trait_again_restarts_its_ttl(onramp, drop):
    """§4.7: the realization timestamp is the last time the trait was realized, so a later
    file that realizes it again (a .sync add, or an .overwrite keeping it) extends it."""
    onramp.apply(TAXONOMY)
    uuid = "2" * 38
    onramp("ingest", str(write(drop, "ftp_dpm_23_1700000000.sync", [f"{uuid}\td_sid=11"])), check=True,
           now="2026-11-22T23:00:00Z")
    onramp("ingest", str(write(drop, "ftp_dpm_23_1700000100.sync", [f"{uuid}\td_sid=11"])), check=True,
           now="2026-11-23T12:00:00Z")
    body = onramp("profile", "--json", f"0:{uuid}", now="2026-11-24T10:00:00Z").json()
    assert body["traits"][0]["expires_at"] == "2026-11-25T00:00:00Z"
    onramp("ingest", str(write(drop, "ftp_dpm_23_1700000200.overwrite", [f"{uuid}\td_sid=11"])), check=True,
           now="2026-11-24T12:00:00Z")
    assert traits(onramp, f"0:{uuid}", now="2026-11-25T10:00:00Z") == {11}
    assert onramp("profile", "--json", f"0:{uuid}", now="2026-11-25T10:00:00Z").json()["traits"][0]["expires_at"] == "2026-11-26T00:00:00Z"


def test_beta_never_reaches_production(onramp, drop):
    onramp.apply(TAXONOMY)
    f = write(drop, "ftp_dpm_22_1700000000.sync", ["b1\td_sid=1"])
    assert onramp("ingest", "--env", "beta", "--json", str(f)).json()[0]["environment"] == "beta"
    assert traits(onramp, "22:b1") == set()
    assert onramp("profile", "--env", "beta", "--json", "22:b1").json()["traits"][0]["sid"] == 1


def test_total_devices_counts_each_device_once_per_receipt(onramp, drop):
    """Two logical files of one data source share a receipt: a device in both counts once."""
    onramp.apply(TAXONOMY)
    a, b = "1" * 38, "2" * 38
    first = write(drop, "ftp_dpm_23_1700000000.sync", [f"{a}\td_sid=11", f"{b}\td_sid=11", f"{a}\td_sid=11"])
    second = write(drop, "ftp_dpm_23_1700000001.sync", [f"{a}\td_sid=11"])
    (both,) = onramp("ingest", "--json", str(first), str(second)).json()
    assert both["stored_records"] == 4 and both["total_devices"] == 2
    (alone,) = onramp("ingest", "--json", str(write(drop, "ftp_dpm_23_1700000002.sync", [f"{a}\td_sid=11", f"{a}\td_sid=11"]))).json()
    assert alone["stored_records"] == 2 and alone["total_devices"] == 1


def test_one_job_checks_each_data_sources_traits_against_its_own_catalogue(onramp, drop):
    # Two data files in one job: trait 1 is an onboarded trait of 22 only, trait 11 of 23
    # only. Each file's lines are checked against its own data source, however the job's
    # lookups are reused from one file to the next.
    onramp.apply(TAXONOMY)
    uuid = "68079982765673198504052656074456196039"
    crm = write(drop, "ftp_dpm_22_1700000000.sync", ["u1\td_sid=1,d_sid=11"])
    uuids = write(drop, "ftp_dpm_23_1700000001.sync", [f"{uuid}\td_sid=1,d_sid=11"])
    res = onramp("ingest", "--json", str(crm), str(uuids))
    assert res.code == 0, res.stderr
    by_dpid = {r["dpid"]: r for r in res.json()}
    assert by_dpid[22]["total_traits_failed_validation"] == 1 and by_dpid[22]["total_realized_traits"] == 1
    assert by_dpid[23]["total_traits_failed_validation"] == 1 and by_dpid[23]["total_realized_traits"] == 1
    assert traits(onramp, "22:u1") == {1}
    assert traits(onramp, f"0:{uuid}") == {11}
