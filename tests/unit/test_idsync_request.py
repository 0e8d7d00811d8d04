"""SPEC §2.1.1–§2.1.2: the ID-sync URL grammar, its 400s, redirects and consent."""

from __future__ import annotations

import pytest

from onramp.formats.idsync_request import (
    InvalidSyncRequest,
    SyncPolicy,
    SyncRequest,
    check_sync_request,
    host_allowed,
    redirect_location,
    tcf_storage_consent,
)

UUID = "07955261652886032950143702505894272138"
POLICY = SyncPolicy(known_dpids=frozenset({21, 22, 20914, 2**31 - 1}))
SPEC_EXAMPLE = b"/ibs:dpid=21&dpuuid=ab%20c%2F1&redir=https%3A%2F%2Fpartner.example%2Fsync%3Fplatform_id%3D%24%7BDD_UUID%7D"


def ok(path: bytes, query: bytes = b"", policy: SyncPolicy = POLICY) -> SyncRequest:
    return check_sync_request(path, query, policy)


def bad(path: bytes, query: bytes = b"", policy: SyncPolicy = POLICY) -> InvalidSyncRequest:
    with pytest.raises(InvalidSyncRequest) as info:
        check_sync_request(path, query, policy)
    assert info.value.hint, "every 400 says how to fix it"
    return info.value


def test_spec_example_stores_raw_id_and_redirects_with_uuid():
    req = ok(SPEC_EXAMPLE)
    assert (req.dpid, req.dpuuid) == (21, "ab c/1")
    assert req.redir == "https://partner.example/sync?platform_id=${DD_UUID}"
    assert redirect_location(req.redir, UUID) == f"https://partner.example/sync?platform_id={UUID}"


@pytest.mark.parametrize(("path", "query"), [
    (b"/ibs:dpid=21&dpuuid=ab%20c%2F1", b""),  # path form
    (b"/ibs", b"dpid=21&dpuuid=ab%20c%2F1"),  # query form (D-10)
    (b"/ibs/", b"dpid=21&dpuuid=ab%20c%2F1"),
    (b"/ibs:", b"dpid=21&dpuuid=ab%20c%2F1"),
    (b"/ibs:dpid=21", b"dpuuid=ab%20c%2F1"),  # split between both
    (b"/ibs:d_dpid=21&d_dpuuid=ab%20c%2F1", b""),  # legacy names
    (b"/ibs:d_cid=21%01ab%20c%2F1", b""),  # combined, parts encoded before joining
    (b"/ibs", b"d_cid=21%01ab%20c%2F1"),
    (b"/ibs:_=1712&dpuuid=ab%20c%2F1&foo&dpid=21&x=%zz", b""),  # unknown parameters ignored
])
def test_every_form_names_the_same_user(path, query):
    req = ok(path, query)
    assert (req.dpid, req.dpuuid, req.redir, req.gdpr) == (21, "ab c/1", None, None)


@pytest.mark.parametrize(("encoded", "decoded"), [
    (b"a+b", "a+b"),  # '+' is a literal plus (D-11)
    (b"%2541", "%41"),  # decoded exactly once
    (b"caf%C3%A9", "café"),
    (b"caf\xc3\xa9", "café"),  # raw UTF-8 bytes as some clients send them
    (b"User123", "User123"),  # case kept (§1.4)
    (b"%7E~%21", "~~!"),
])
def test_dpuuid_is_percent_decoded_once(encoded, decoded):
    assert ok(b"/ibs:dpid=21&dpuuid=" + encoded).dpuuid == decoded


@pytest.mark.parametrize(("path", "where", "words"), [
    (b"/ibs:dpuuid=x", "dpid", "missing"),
    (b"/ibs:dpid=21", "dpuuid", "missing"),
    (b"/ibs:dpid=21&dpuuid=", "dpuuid", "empty"),
    (b"/ibs:d_dpid=21", "d_dpuuid", "missing"),
    (b"/ibs:dpid=22x&dpuuid=x", "dpid", "not a data source ID"),
    (b"/ibs:dpid=0&dpuuid=x", "dpid", "not a data source ID"),  # DPID 0 is reserved (§1.2)
    (b"/ibs:dpid=021&dpuuid=x", "dpid", "not a data source ID"),
    (b"/ibs:dpid=2147483648&dpuuid=x", "dpid", "not a data source ID"),  # D-01
    (b"/ibs:dpid=-21&dpuuid=x", "dpid", "not a data source ID"),
    (b"/ibs:dpid=23&dpuuid=x", "dpid", "does not exist"),  # unknown data source (§2.1.2)
    (b"/ibs:dpid=21&dpuuid=a%3Ab", "dpuuid", "':'"),
    (b"/ibs:dpid=21&dpuuid=a:b", "dpuuid", "':'"),
    (b"/ibs:dpid=21&dpuuid=a%253Ab", "dpuuid", "%3A"),  # D-04, also once decoded
    (b"/ibs:dpid=21&dpuuid=a%09b", "dpuuid", "control"),
    (b"/ibs:dpid=21&dpuuid=a%0Ab", "dpuuid", "control"),
    (b"/ibs:dpid=21&dpuuid=jane%40mail.example", "dpuuid", "email"),  # D-05
    (b"/ibs:dpid=21&dpuuid=" + b"x" * 1025, "dpuuid", "1,024"),  # D-06
    (b"/ibs:dpid=21&dpuuid=%C3%A9" * 1 + b"x" * 1023, "dpuuid", "1,024"),  # bytes, not characters
    (b"/ibs:dpid=21&dpuuid=50%", "dpuuid", "%XX"),
    (b"/ibs:dpid=21&dpuuid=%zz", "dpuuid", "%XX"),
    (b"/ibs:dpid=21&dpuuid=%FF", "dpuuid", "UTF-8"),
    (b"/ibs:dpid=21&dpuuid=x&dpid=21", "dpid", "more than once"),
    (b"/ibs:dpid=21&dpuuid=x&d_dpid=21", "d_dpid", "conflicting"),
    (b"/ibs:dpid=21&d_cid=21%01x", "d_cid", "conflicting"),
    (b"/ibs:d_cid=21x", "d_cid", "%01"),
    (b"/ibs:d_cid=%01x", "dpid", "not a data source ID"),
    (b"/ibs:dpid=20914&dpuuid=E4FE9BDE-CAA0-47B6-908D-FFBA3FA184F2", "dpuuid", "Google"),  # §1.5 case
    (b"/ibs:dpid=20914&dpuuid=00000000-0000-0000-0000-000000000000", "dpuuid", "Google"),  # D-08
    (b"/ibs:dpid=21&dpuuid=x&gdpr=1", "gdpr", "without gdpr_consent"),  # D-12
    (b"/ibs:dpid=21&dpuuid=x&gdpr_consent=CO", "gdpr_consent", "without gdpr"),
    (b"/ibs:dpid=21&dpuuid=x&gdpr=yes&gdpr_consent=CO", "gdpr", "neither 0 nor 1"),
    (b"/ibs:dpid=21&dpuuid=x&gdpr=1&gdpr_consent=a%20b", "gdpr_consent", "base64"),
    (b"/ibs:dpid=21&dpuuid=x&redir=", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=%2Fsync", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=%2F%2Fevil.example%2F", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=javascript%3Aalert(1)", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=ftp%3A%2F%2Fp.example%2F", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2F%24%7BDD_UUID%7D.p.example%2F", "redir", "absolute"),
    (b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2Fp.example%3A99999%2F", "redir", "valid URL"),
    (b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2Fevil.example%5C%40p.example%2F", "redir", "backslash"),
    (b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2Fp.example%2F%0D%0ASet-Cookie%3A%20a", "redir", "control"),
])
def test_invalid_requests_are_400_with_a_reason(path, where, words):
    err = bad(path)
    assert err.where == where
    assert words in err.message


def test_an_id_at_the_length_limit_passes():
    assert len(ok(b"/ibs:dpid=21&dpuuid=" + b"x" * 1024).dpuuid) == 1024
    assert ok(b"/ibs:dpid=2147483647&dpuuid=x").dpid == 2**31 - 1


def test_a_parameter_may_not_be_repeated_across_path_and_query():
    assert bad(b"/ibs:dpid=21&dpuuid=x", b"dpuuid=y").where == "dpuuid"


def test_global_device_source_takes_its_own_id_format():
    req = ok(b"/ibs:dpid=20914&dpuuid=e4fe9bde-caa0-47b6-908d-ffba3fa184f2")
    assert req.dpuuid == "e4fe9bde-caa0-47b6-908d-ffba3fa184f2"


def test_email_like_ids_pass_when_the_check_is_off():
    policy = SyncPolicy(known_dpids=frozenset({21}), reject_email_like=False)
    assert ok(b"/ibs:dpid=21&dpuuid=jane%40mail.example", policy=policy).dpuuid == "jane@mail.example"


def test_not_an_idsync_path():
    assert bad(b"/ibsdpid=21").where == "path"


def test_gdpr_pair_is_parsed():
    req = ok(b"/ibs:dpid=21&dpuuid=x&gdpr=0&gdpr_consent=")
    assert (req.gdpr, req.gdpr_consent) == (0, "")
    req = ok(b"/ibs:dpid=21&dpuuid=x&gdpr=1", b"gdpr_consent=CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA.YAAAAAAAAAAA")
    assert req.gdpr == 1 and req.gdpr_consent.startswith("CPXx")


# -- redirects (§2.1.2 step 5, D-13) -----------------------------------------------------------
def test_every_macro_is_substituted_and_opt_out_gets_empty_string():
    template = "https://p.example/s?a=${DD_UUID}&b=${DD_UUID}&c=$DD_UUID"
    assert redirect_location(template, UUID) == f"https://p.example/s?a={UUID}&b={UUID}&c=$DD_UUID"
    assert redirect_location(template, "") == "https://p.example/s?a=&b=&c=$DD_UUID"


def test_redirect_keeps_escapes_and_encodes_non_ascii():
    req = ok(b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2Fp.example%2Fcaf%C3%A9%3Fq%3Da%2520b%26u%3D%24%7BDD_UUID%7D")
    assert req.redir == "https://p.example/café?q=a%20b&u=${DD_UUID}"
    assert redirect_location(req.redir, UUID) == f"https://p.example/caf%C3%A9?q=a%20b&u={UUID}"


def test_redirect_without_macro_is_allowed():
    assert ok(b"/ibs:dpid=21&dpuuid=x&redir=http%3A%2F%2Fp.example%3A8080%2F").redir == "http://p.example:8080/"


@pytest.mark.parametrize(("host", "patterns", "allowed"), [
    ("partner.example", ("partner.example",), True),
    ("PARTNER.example.", ("partner.example",), True),
    ("www.partner.example", ("partner.example",), False),
    ("www.partner.example", ("*.partner.example",), True),
    ("a.b.partner.example", ("*.partner.example",), True),
    ("partner.example", ("*.partner.example",), False),
    ("evilpartner.example", ("*.partner.example",), False),
    ("partner.example.evil", ("partner.example",), False),
    ("other.example", ("partner.example", "other.example"), True),
])
def test_host_allow_list(host, patterns, allowed):
    assert host_allowed(host, patterns) is allowed


def test_per_data_source_allow_list_replaces_the_global_one():
    policy = SyncPolicy(known_dpids=frozenset({21, 22}), redirect_hosts=("global.example",),
                        redirect_hosts_by_dpid={21: ("*.partner.example",)})
    url = b"&redir=https%3A%2F%2F{}%2Fs"
    assert ok(b"/ibs:dpid=21&dpuuid=x" + url.replace(b"{}", b"www.partner.example"), policy=policy)
    err = bad(b"/ibs:dpid=21&dpuuid=x" + url.replace(b"{}", b"global.example"), policy=policy)
    assert (err.where, "not allowed for data source 21" in err.message) == ("redir", True)
    assert ok(b"/ibs:dpid=22&dpuuid=x" + url.replace(b"{}", b"global.example"), policy=policy)
    assert bad(b"/ibs:dpid=22&dpuuid=x" + url.replace(b"{}", b"www.partner.example"), policy=policy).where == "redir"


def test_no_allow_list_means_any_http_host():
    assert ok(b"/ibs:dpid=21&dpuuid=x&redir=https%3A%2F%2Fanything.example%2F").redir == "https://anything.example/"
    assert ok(b"/ibs:dpid=21&dpuuid=x&redir=http%3A%2F%2F%5B%3A%3A1%5D%3A81%2F").redir == "http://[::1]:81/"


# -- consent (§2.1.2 step 2) ------------------------------------------------------------------------
# Public TCF v2 test vectors (IAB TC strings with known decodings): the first grants purposes
# 1, 3, 9 and 10; the second grants no purpose at all.
TCF_PURPOSE_1 = "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
TCF_NO_PURPOSE = "COyfVVoOyfVVoADACHENAwCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAnSAMABgAFkAgQCDASeAmYBOgAA"


def _tc_string(version: int, purposes: set[int]) -> str:
    """A minimal core string: version, zeros up to the purposes field, then 24 purpose bits."""
    import base64

    offset = {1: 132, 2: 152}[version]
    bits = format(version, "06b") + "0" * (offset - 6) + "".join("1" if p in purposes else "0" for p in range(1, 25))
    bits += "0" * (-len(bits) % 8 + 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_tcf_vectors():
    assert tcf_storage_consent(TCF_PURPOSE_1) is True
    assert tcf_storage_consent(TCF_NO_PURPOSE) is False
    assert tcf_storage_consent(TCF_PURPOSE_1 + ".argAC0gAAAAAAAAAAAA") is True  # with a publisher segment


@pytest.mark.parametrize("version", [1, 2])
def test_tcf_purpose_one_decides(version):
    assert tcf_storage_consent(_tc_string(version, {1})) is True
    assert tcf_storage_consent(_tc_string(version, {2, 3, 4, 5, 6, 7, 8, 9, 10})) is False


@pytest.mark.parametrize("tc", ["", "C", "not base64!", "AAAA", _tc_string(2, {1})[:10], "D" + _tc_string(2, {1})[1:]])
def test_undecodable_consent_is_a_refusal(tc):
    assert tcf_storage_consent(tc) is False
