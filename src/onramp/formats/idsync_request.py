"""The HTTP ID-sync request (SPEC §2.1.1–§2.1.2): URL bytes → a validated sync request.

Pure: no I/O, no clock. The server hands over the *raw* path and query bytes, because the
DPUUID is percent-encoded and must be decoded exactly once (§2.1.1, D-11): a server-decoded
path would already have turned ``%2F`` into ``/`` and ``%25`` into ``%``.

    /ibs:dpid=21&dpuuid=ab%20c%2F1&redir=https%3A%2F%2Fp.example%2Fs%3Fid%3D%24%7BDD_UUID%7D
    /ibs?d_dpid=21&d_dpuuid=ab%20c%2F1                     (query form, D-10; legacy names)
    /ibs:d_cid=21%01ab%20c%2F1                             (combined form, SOH separator)

Every rejection is an ``InvalidSyncRequest`` (HTTP 400, nothing stored, no cookie: D-12)
naming the parameter, what is wrong and how to fix it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from onramp.errors import OnrampError
from onramp.formats.ids import GLOBAL_DEVICE_SOURCES, check_device_id, check_dpuuid

MACRO = "${DD_UUID}"
MAX_DPID = 2**31 - 1  # D-01

# Parameter families naming one (DPID, DPUUID); a request uses exactly one (§2.1.1).
ID_FAMILIES: tuple[tuple[str, ...], ...] = (("dpid", "dpuuid"), ("d_dpid", "d_dpuuid"), ("d_cid",))
KNOWN = frozenset(n for fam in ID_FAMILIES for n in fam) | {"redir", "gdpr", "gdpr_consent"}
_KNOWN_BYTES = {n.encode(): n for n in KNOWN}

_DPID = re.compile(r"[1-9][0-9]{0,9}")
_COMMON_FORM = re.compile(rb"/ibs:dpid=([1-9][0-9]{0,9})&dpuuid=([^&]*)")
# ASCII IDs without ':', '%', '@' or controls, ≤ 1,024 bytes: valid under every rule of
# formats.ids.check_dpuuid, so the common case skips its rule table.
_PLAIN_ID = re.compile(r"[\x20-\x24\x26-\x39\x3b-\x3f\x41-\x7e]{1,1024}")
# Every two-character hex escape body, either case, → its byte.
_HEX_PAIRS = {f"{h}{l}".encode(): bytes([int(h + l, 16)])
              for h in "0123456789abcdefABCDEF" for l in "0123456789abcdefABCDEF"}
# URL-safe base64 (TCF v1/v2); TCF v2 joins its segments with '.'.
_CONSENT = re.compile(r"[A-Za-z0-9_\-.=]*")
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?|[0-9a-f:.]+")
# Browsers read '\' as '/' in http(s) URLs, so a backslash could hide the real host from
# the allow-list; whitespace and controls could split the Location header.
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")
_LOCATION_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))

# dpuuid reasons of formats.ids.check_dpuuid, with hints for the HTTP form.
_DPUUID_HINTS: dict[str, str] = {
    "is empty": "send the partner's user ID as dpuuid=<ID>",
    "contains a control character": "user IDs must not contain TAB, CR, LF or other control characters",
    "contains ':'": "user IDs must not contain ':' (D-04); use another separator or hash the ID",
    "contains '%3A' (an encoded colon)": "user IDs must not contain ':' (D-04); use another separator or hash the ID",
    "looks like a raw email address": "raw email addresses are PII; send a SHA-256 hash or a random ID instead",
}


class InvalidSyncRequest(OnrampError):
    """The request breaks §2.1.1–§2.1.2: answered with 400, nothing stored, no cookie set.

    ``where`` is the parameter at fault (``dpid``, ``dpuuid``, ``redir``, ``gdpr``...).
    """


class SyncRequest(NamedTuple):
    """One decoded ID-sync call: link the browser's platform UUID to ``(dpid, dpuuid)``.

    A NamedTuple rather than a frozen dataclass: built on every pixel call, and a tuple is
    several times cheaper to make.
    """

    dpid: int
    dpuuid: str
    redir: str | None = None  # decoded URL template; may hold ${DD_UUID}
    gdpr: int | None = None  # 0 or 1 when given (always together with gdpr_consent)
    gdpr_consent: str | None = None


@dataclass(frozen=True)
class SyncPolicy:
    """What the platform currently accepts: known data sources and redirect hosts (D-13).

    A host pattern is a host name (``partner.example``) or ``*.`` + a domain, which matches
    its subdomains (``*.partner.example``). No pattern for a DPID and none globally = any host.
    """

    known_dpids: frozenset[int]
    reject_email_like: bool = True
    redirect_hosts: tuple[str, ...] = ()
    redirect_hosts_by_dpid: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    def hosts_for(self, dpid: int) -> tuple[str, ...]:
        return self.redirect_hosts_by_dpid.get(dpid) or self.redirect_hosts


def parse_sync_request(raw_path: bytes, query_string: bytes = b"") -> SyncRequest:
    """Decode the parameters of ``/ibs:…`` (path form) and/or ``/ibs?…`` (query form).

    Checks syntax only (names, encodings, pairs, URL shape); ``validate_sync_request``
    checks them against the platform's data sources. Unknown parameters are ignored, so
    cache busters (``&_=1712``) pass; a known one given twice is ambiguous and rejected.
    """
    if not query_string:
        # The shape nearly every call has; _parse_general gives the same answer, slower.
        fast = _COMMON_FORM.fullmatch(raw_path)
        if fast is not None and int(fast[1]) <= MAX_DPID:
            return SyncRequest(int(fast[1]), _decode(fast[2], "dpuuid"))
    return _parse_general(raw_path, query_string)


def _parse_general(raw_path: bytes, query_string: bytes) -> SyncRequest:
    params = _collect(_path_params(raw_path), query_string)
    dpid_raw, dpuuid_raw = _id_pair(params)
    dpid = _parse_dpid(_decode(dpid_raw, "dpid"))
    dpuuid = _decode(dpuuid_raw, "dpuuid")
    gdpr, consent = _parse_gdpr(params)
    redir = None
    if "redir" in params:
        redir = _decode(params["redir"], "redir")
        _check_redirect_shape(redir)
    return SyncRequest(dpid=dpid, dpuuid=dpuuid, redir=redir, gdpr=gdpr, gdpr_consent=consent)


def validate_sync_request(req: SyncRequest, policy: SyncPolicy) -> None:
    """Check ``req`` against the platform: the data source exists, the user ID fits it
    (§1.4, or §1.5 for a global device source) and ``redir`` goes to an allowed host."""
    if req.dpid not in policy.known_dpids:
        raise InvalidSyncRequest(f"data source {req.dpid} does not exist", where="dpid",
                                 hint="use the DPID the platform assigned to your data source")
    fmt = GLOBAL_DEVICE_SOURCES.get(req.dpid)
    if fmt is not None:
        if not check_device_id(req.dpid, req.dpuuid):
            raise InvalidSyncRequest(f"is not a valid {fmt.name} ID", where="dpuuid",
                                     hint=f"data source {req.dpid} expects a {fmt.kind}, exact case, not all zeros")
    elif _PLAIN_ID.fullmatch(req.dpuuid) is None:  # the plain ones pass every §1.4 rule
        reason = check_dpuuid(req.dpuuid, reject_email_like=policy.reject_email_like)
        if reason is not None:
            raise InvalidSyncRequest(reason, where="dpuuid", hint=_DPUUID_HINTS.get(
                reason, "user IDs are at most 1,024 UTF-8 bytes once percent-decoded (D-06)"))
    if req.redir is not None:
        host = _redirect_host(req.redir)
        patterns = policy.hosts_for(req.dpid)
        if patterns and not host_allowed(host, patterns):
            raise InvalidSyncRequest(f"host {host} is not allowed for data source {req.dpid}", where="redir",
                                     hint="redirect to a host on the data source's allow-list, or ask the platform to add it")


def check_sync_request(raw_path: bytes, query_string: bytes, policy: SyncPolicy) -> SyncRequest:
    """``parse_sync_request`` then ``validate_sync_request``."""
    req = parse_sync_request(raw_path, query_string)
    validate_sync_request(req, policy)
    return req


def redirect_location(template: str, uuid: str) -> str:
    """The ``Location`` of the 302 (§2.1.2 step 5): every literal ``${DD_UUID}`` replaced by
    ``uuid`` (the empty string for an opted-out browser). Non-ASCII characters are
    percent-encoded as UTF-8 so the header stays ASCII; everything else is kept as sent."""
    return quote(template.replace(MACRO, uuid), safe=_LOCATION_SAFE)


def host_allowed(host: str, patterns: tuple[str, ...]) -> bool:
    """True when ``host`` matches a pattern: equal (case-insensitive, trailing dot ignored),
    or ``*.domain`` and ``host`` is a subdomain of ``domain``."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        p = pattern.lower().rstrip(".")
        if p.startswith("*."):
            if host.endswith(p[1:]) and len(host) > len(p) - 1:
                return True
        elif host == p:
            return True
    return False


def tcf_storage_consent(tc_string: str) -> bool:
    """Default consent evaluator (§2.1.2 step 2): does the IAB TCF string (v1 or v2) grant
    Purpose 1, "store and/or access information on a device"? The sync cookie is exactly
    that. An undecodable string is a refusal."""
    core = tc_string.split(".", 1)[0]
    try:
        data = base64.urlsafe_b64decode(core + "=" * (-len(core) % 4))
    except (ValueError, TypeError):
        return False
    if len(data) < 20:
        return False
    version = data[0] >> 2
    # Bit offsets of the purposes field: v1 "PurposesAllowed" at 132, v2 "PurposesConsent" at 152.
    bit = {1: 132, 2: 152}.get(version)
    if bit is None:
        return False
    return bool(data[bit // 8] >> (7 - bit % 8) & 1)


# -- parsing helpers ---------------------------------------------------------------------------
def _path_params(raw_path: bytes) -> bytes:
    if raw_path in (b"/ibs", b"/ibs/", b"/ibs:"):
        return b""
    if raw_path.startswith(b"/ibs:"):
        return raw_path[5:]
    raise InvalidSyncRequest("not an ID-sync URL", where="path",
                             hint="call /ibs:dpid=<DPID>&dpuuid=<ID> or /ibs?dpid=<DPID>&dpuuid=<ID>")


def _collect(path_part: bytes, query: bytes) -> dict[str, bytes]:
    """Known parameters → raw (still percent-encoded) values, from the path then the query."""
    params: dict[str, bytes] = {}
    for chunk in (path_part, query):
        if not chunk:
            continue
        for item in chunk.split(b"&"):
            raw_name, _, value = item.partition(b"=")
            name = _KNOWN_BYTES.get(raw_name)
            if name is None:
                continue
            if name in params:
                raise InvalidSyncRequest("is given more than once", where=name,
                                         hint=f"send {name} once per call; one call links one user ID")
            params[name] = value
    return params


def _id_pair(params: dict[str, bytes]) -> tuple[bytes, bytes]:
    """The raw DPID and DPUUID from whichever one parameter family the call uses."""
    # Spelled out rather than a comprehension over ID_FAMILIES: this runs on every pixel call.
    used = [fam for fam, present in zip(ID_FAMILIES, (
        "dpid" in params or "dpuuid" in params,
        "d_dpid" in params or "d_dpuuid" in params,
        "d_cid" in params,
    )) if present]
    if len(used) > 1:
        names = " and ".join(fam[0] for fam in used)
        raise InvalidSyncRequest(f"conflicting parameters {names}", where=used[1][0],
                                 hint="name the user ID one way only: dpid+dpuuid, d_dpid+d_dpuuid, or d_cid")
    if not used:
        raise InvalidSyncRequest("is missing", where="dpid", hint="add dpid=<your data source ID>&dpuuid=<user ID>")
    fam = used[0]
    if fam == ("d_cid",):
        dpid_raw, sep, dpuuid_raw = params["d_cid"].partition(b"%01")
        if not sep:
            raise InvalidSyncRequest("has no %01 separator", where="d_cid",
                                     hint="send d_cid=<DPID>%01<URL-encoded user ID>")
        return dpid_raw, dpuuid_raw
    dpid_name, dpuuid_name = fam
    for name in fam:
        if name not in params:
            other = dpuuid_name if name == dpid_name else dpid_name
            raise InvalidSyncRequest("is missing", where=name, hint=f"{other} needs {name}=… in the same call")
    return params[dpid_name], params[dpuuid_name]


def _decode(raw: bytes, name: str) -> str:
    """Percent-decode exactly once; '+' stays a plus (D-11); the bytes must be UTF-8."""
    if b"%" in raw:
        first, *rest = raw.split(b"%")
        out = [first]
        for chunk in rest:
            byte = _HEX_PAIRS.get(chunk[:2])
            if byte is None:
                raise InvalidSyncRequest("has a '%' that does not start a %XX escape", where=name,
                                         hint="percent-encode the value: a literal '%' is sent as %25")
            out += (byte, chunk[2:])
        raw = b"".join(out)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSyncRequest("is not UTF-8 once percent-decoded", where=name,
                                 hint="encode non-ASCII characters as the %XX escapes of their UTF-8 bytes") from None


def _parse_dpid(text: str) -> int:
    if _DPID.fullmatch(text) is None or int(text) > MAX_DPID:
        raise InvalidSyncRequest(f"{text!r} is not a data source ID", where="dpid",
                                 hint=f"send the DPID as digits, 1 to {MAX_DPID}, without leading zeros")
    return int(text)


def _parse_gdpr(params: dict[str, bytes]) -> tuple[int | None, str | None]:
    has_gdpr, has_consent = "gdpr" in params, "gdpr_consent" in params
    if has_gdpr != has_consent:  # D-12
        given, missing = ("gdpr", "gdpr_consent") if has_gdpr else ("gdpr_consent", "gdpr")
        raise InvalidSyncRequest(f"is given without {missing}", where=given,
                                 hint="send gdpr=<0|1> and gdpr_consent=<TC string> together, or neither")
    if not has_gdpr:
        return None, None
    gdpr = _decode(params["gdpr"], "gdpr")
    if gdpr not in ("0", "1"):
        raise InvalidSyncRequest(f"{gdpr!r} is neither 0 nor 1", where="gdpr",
                                 hint="gdpr=1 when GDPR applies to the user, gdpr=0 when it does not")
    consent = _decode(params["gdpr_consent"], "gdpr_consent")
    if _CONSENT.fullmatch(consent) is None:
        raise InvalidSyncRequest("is not a URL-safe base64 TC string", where="gdpr_consent",
                                 hint="send the IAB TCF consent string as the CMP produced it")
    return int(gdpr), consent


def _check_redirect_shape(url: str) -> None:
    if _UNSAFE_URL.search(url):
        raise InvalidSyncRequest("contains a space, a control character or a backslash", where="redir",
                                 hint="percent-encode the whole redirect URL before putting it in redir=")
    _redirect_host(url)


def _redirect_host(url: str) -> str:
    hint = "send an absolute http:// or https:// URL, percent-encoded, e.g. https%3A%2F%2Fpartner.example%2Fsync"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise InvalidSyncRequest("is not a valid URL", where="redir", hint=hint) from None
    host = parts.hostname or ""
    if parts.scheme.lower() not in ("http", "https") or not host or _HOST.fullmatch(host) is None:
        raise InvalidSyncRequest("is not an absolute http(s) URL with a valid host", where="redir", hint=hint)
    return host
