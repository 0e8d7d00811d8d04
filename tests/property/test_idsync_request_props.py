"""Properties of the ID-sync URL grammar (SPEC §2.1.1): encoding round trips, form
equivalence, robustness on arbitrary bytes, and safe redirects."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from onramp.formats.ids import check_dpuuid
from onramp.formats.idsync_request import (
    MACRO,
    InvalidSyncRequest,
    SyncPolicy,
    check_sync_request,
    host_allowed,
    parse_sync_request,
    redirect_location,
)

POLICY = SyncPolicy(known_dpids=frozenset(range(1, 50)))

# Valid user IDs (§1.4): any Unicode except controls, ':' and surrogates, not email-like, ≤ 1,024 bytes.
dpuuids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters=":"), min_size=1, max_size=60
).filter(lambda s: check_dpuuid(s) is None)
dpids = st.integers(1, 49)


def enc(s: str) -> bytes:
    """How a partner encodes a value: every reserved and non-ASCII character escaped (§2.1.1)."""
    return quote(s, safe="").encode()


@given(dpids, dpuuids)
def test_encoded_id_decodes_to_itself_in_every_form(dpid, dpuuid):
    forms = [
        (b"/ibs:dpid=%d&dpuuid=%s" % (dpid, enc(dpuuid)), b""),
        (b"/ibs", b"dpid=%d&dpuuid=%s" % (dpid, enc(dpuuid))),
        (b"/ibs:d_dpid=%d&d_dpuuid=%s" % (dpid, enc(dpuuid)), b""),
        (b"/ibs:d_cid=%d%%01%s" % (dpid, enc(dpuuid)), b""),
    ]
    for path, query in forms:
        req = check_sync_request(path, query, POLICY)
        assert (req.dpid, req.dpuuid) == (dpid, dpuuid)


@given(dpids, dpuuids, st.permutations(["id", "uid", "junk", "cb"]), st.booleans())
def test_parameter_order_and_unknown_parameters_do_not_matter(dpid, dpuuid, order, in_query):
    items = {"id": b"dpid=%d" % dpid, "uid": b"dpuuid=" + enc(dpuuid), "junk": b"d_sid=7", "cb": b"_=%d" % dpid}
    params = b"&".join(items[k] for k in order)
    path, query = (b"/ibs", params) if in_query else (b"/ibs:" + params, b"")
    req = parse_sync_request(path, query)
    assert (req.dpid, req.dpuuid) == (dpid, dpuuid)


names = st.sampled_from([b"dpid", b"dpuuid", b"d_dpid", b"d_dpuuid", b"d_cid", b"redir", b"gdpr", b"gdpr_consent", b"x"])
values = st.binary(max_size=30) | st.sampled_from([b"1", b"21", b"%01", b"a%01b", b"1%01a", b"%", b"%C3", b"http%3A%2F%2Fh%2F"])
junk = st.lists(st.tuples(names, values), max_size=6).map(lambda kv: b"&".join(k + b"=" + v for k, v in kv))


@given(junk | st.binary(max_size=100), junk | st.binary(max_size=50))
def test_arbitrary_bytes_either_parse_or_raise_a_400(tail, query):
    # The pixel must never fail with anything but a 400 on what a browser can send.
    try:
        req = check_sync_request(b"/ibs:" + tail, query, POLICY)
    except InvalidSyncRequest as exc:
        assert exc.where and exc.hint
    else:
        assert req.dpid in POLICY.known_dpids
        assert check_dpuuid(req.dpuuid) is None


@given(st.lists(st.sampled_from(["dpid=1", "dpuuid=a", "d_dpid=1", "d_dpuuid=a", "d_cid=1%01a", "gdpr=1",
                                 "gdpr_consent=CO", "redir=http%3A%2F%2Fh.example%2F", "x=1"]), max_size=8))
def test_accepted_requests_name_exactly_one_family_and_gdpr_pairs(items):
    try:
        req = parse_sync_request(b"/ibs:" + "&".join(items).encode())
    except InvalidSyncRequest:
        return
    names = {i.split("=")[0] for i in items}
    families = [{"dpid", "dpuuid"}, {"d_dpid", "d_dpuuid"}, {"d_cid"}]
    assert sum(bool(f & names) for f in families) == 1
    assert ("gdpr" in names) == ("gdpr_consent" in names) == (req.gdpr is not None)
    known = [i.split("=")[0] for i in items if not i.startswith("x=")]
    assert len(known) == len(set(known))  # no known parameter given twice (unknown ones are ignored)


uuids = st.from_regex(r"[0-9]{38}", fullmatch=True) | st.just("")
url_tails = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs")).filter(lambda c: c not in "\\\x85\u2028\u2029"), max_size=40)


@given(uuids, url_tails.filter(lambda t: "$" not in t), url_tails.filter(lambda t: "$" not in t))
def test_redirect_location_is_safe_ascii_with_every_macro_replaced(uuid, a, b):
    loc = redirect_location(f"https://p.example/{a}{MACRO}{b}{MACRO}", uuid)
    assert all(0x21 <= ord(c) < 0x7F for c in loc)  # no header splitting, no raw UTF-8
    assert MACRO not in loc and "DD_UUID" not in loc
    assert loc.startswith("https://p.example/") and loc.endswith(uuid)


@given(uuids, url_tails)
def test_redirect_round_trip_through_the_url(uuid, tail):
    # Whatever a partner percent-encodes into redir comes back in Location, with the UUID in place.
    template = f"https://p.example/sync?x={tail}&id={MACRO}"
    req = check_sync_request(b"/ibs:dpid=1&dpuuid=a&redir=" + enc(template), b"", POLICY)
    assert req.redir == template
    assert redirect_location(req.redir, uuid).endswith(f"&id={uuid}")


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=4), st.lists(labels, min_size=1, max_size=3))
def test_wildcard_matches_subdomains_only(domain_labels, sub_labels):
    domain = ".".join(domain_labels)
    sub = ".".join(sub_labels) + "." + domain
    assert host_allowed(domain, (domain,))
    assert host_allowed(sub, ("*." + domain,))
    assert not host_allowed(domain, ("*." + domain,))
    assert not host_allowed("x" + domain, ("*." + domain,))
    assert not host_allowed(domain + ".evil", (domain,))


@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=0, max_size=40) | st.just("x" * 1025))
def test_plain_id_shortcut_agrees_with_the_full_rules(dpuuid):
    # validate_sync_request skips check_dpuuid for "plain" IDs; it must never accept more.
    from onramp.formats import idsync_request

    if idsync_request._PLAIN_ID.fullmatch(dpuuid):
        assert check_dpuuid(dpuuid) is None
    policy = SyncPolicy(known_dpids=frozenset({1}))
    req = idsync_request.SyncRequest(dpid=1, dpuuid=dpuuid)
    rejected = check_dpuuid(dpuuid) is not None
    try:
        idsync_request.validate_sync_request(req, policy)
    except InvalidSyncRequest:
        assert rejected
    else:
        assert not rejected


@given(st.from_regex(rb"[0-9]{1,11}", fullmatch=True) | st.binary(max_size=4),
       st.binary(max_size=20) | st.sampled_from([b"a%2Fb", b"%", b"%C3%A9", b"x%3a", b""]))
def test_common_form_shortcut_agrees_with_the_general_parser(dpid, dpuuid):
    from onramp.formats import idsync_request

    raw = b"/ibs:dpid=" + dpid + b"&dpuuid=" + dpuuid

    def outcome(parse):
        try:
            return parse(raw, b"")
        except InvalidSyncRequest as exc:
            return (exc.where, exc.message)

    assert outcome(idsync_request.parse_sync_request) == outcome(idsync_request._parse_general)
