"""Seeded, realistic partner files for ``onramp demo``, tests and benchmarks.

Everything proportional to the number of lines is numpy work on whole chunks; Python
only loops over chunks and over the small vocabularies. A chunk is a sequence of
tokens (a line's ``\\n<user ID>\\t`` head, then its items, each carrying its leading
separator) that ``_assemble`` concatenates with one numpy gather and scatter per 16-byte
unit of token, so a 2-core machine writes 10M lines in well under a minute.

Identities are pure functions of a user index: ``user_uuid(7)`` is always the same
device and ``user_crm_id(7)`` the same customer, whatever the seed, so a sync file links
the users of data files written with other seeds.

``bench_taxonomy`` builds the benchmark taxonomy in the SPEC §11.2 schema; the key-value
writer reads the rules back, so lines match rules often (Zipf) but not always.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

PARTNER_PID = 7
DSID_DPID = 21  # cookie source, column 1 = platform UUIDs, onboarded traits realized by d_sid
KV_DPID = 22  # cross-device source, column 1 = CRM IDs, traits with rules
FIRST_ONBOARDED_SID = 100_000
FIRST_RULE_SID = 200_000

CHUNK_LINES = 1_000_000  # d_sid and sync lines per numpy chunk
KV_CHUNK_LINES = 500_000  # key-value lines are ~2x longer
KV_ITEM_POOL = 1 << 18  # rendered key-value items per chunk that its lines draw from (_KvItems)
GZIP_LEVEL = 6  # with pigz; python-isal has levels 0..3 and its default 2 is ~5-15 % larger than gzip -6
ISAL_LEVEL = 2

_U64 = np.uint64
_SLACK = 256  # bytes after a token pool; no token is longer
_UNIT = 16  # bytes copied per fancy-index element when assembling lines
_UNIT_DTYPE = np.dtype(f"V{_UNIT}")
_CRM_MIN, _CRM_MAX = 12, 24
_DIGITS = np.frombuffer(bytes(48 + b % 10 for b in range(256)), dtype=np.uint8)
_CRM_CHARS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" * 4, dtype=np.uint8)

# --- vocabulary --------------------------------------------------------------------

_WORDS = (
    "acme apex alpine amber atlas aurora autumn azure badge basic beach berry blaze bloom bolt bright "
    "brisk bronze canyon carbon cargo cedar chrome cinema citrus classic cloud coast cobalt comet coral "
    "cotton crest crystal cyber dawn delta denim desert diamond digital eagle echo eclipse ember emerald "
    "energy falcon fiber field flash flora forest fresh frost fusion galaxy garden giant glacier global "
    "gold granite green harbor harvest hawk heritage highland horizon indigo iron island ivory jade jet "
    "jungle karma kinetic lagoon laser legend lemon liberty lime lotus lunar magnet maple marble marine "
    "meadow metro midnight mint mobile modern mosaic motion mountain nature neon nova oasis ocean olive "
    "omega onyx orbit orchid pacific panda paper peak pearl pepper phoenix pine pixel planet plasma "
    "platinum polar prime prism pulse quartz quest radiant rain ranger raven rebel ridge river rocket "
    "royal ruby rustic safari sage sapphire saturn scarlet shadow sierra silver sky solar sonic spark "
    "spirit sport spring star steel stone storm summit sun swift tango terra thunder tiger timber titan "
    "topaz tower trail tropic tundra turbo twilight ultra union urban valley velvet venture vertex "
    "vintage violet vista volt voyage wave wild willow wind winter wolf zen zenith zephyr tablet phone "
    "camera laptop sedan pickup truck suv coupe sneaker jacket news travel finance auto music movies "
    "gaming fitness cooking fashion beauty health outdoor kids pets"
).split()
_CITIES = (
    "New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|San Jose|Austin|"
    "Seattle|Denver|Boston|Portland|Miami|Atlanta|Detroit|Minneapolis|Berlin|Hamburg|Munich|Paris|Lyon|London|"
    "Manchester|Madrid|Barcelona|Rome|Milan|Amsterdam|Vienna|Zurich|Toronto|Vancouver|Sydney|Melbourne|Tokyo|"
    "Osaka|Seoul|Singapore|Mumbai|Delhi|Sao Paulo|Mexico City|Buenos Aires|Cape Town|Dublin|Oslo|Stockholm"
).split("|")
_COUNTRIES = "us ca mx br ar gb ie fr de at ch nl be es pt it se no dk fi pl cz jp kr cn in sg au nz za".split()
_GENDERS = ["f", "m", "female", "male", "unknown"]

# key → (kind, share of the equality rules).  "ic" also appears as bare codes.
_EQ_KEYS: dict[str, tuple[str, float]] = {
    "ic": ("code", 0.40),
    "c_brand": ("word", 0.050), "c_category": ("word", 0.040), "product": ("word", 0.035),
    "c_interest": ("word", 0.030), "c_segment": ("word", 0.030), "c_campaign": ("word", 0.028),
    "c_subcategory": ("word", 0.025), "c_model": ("word", 0.022), "c_make": ("word", 0.020),
    "model": ("word", 0.018), "make": ("word", 0.016), "c_source": ("word", 0.015),
    "c_channel": ("word", 0.014), "c_medium": ("word", 0.013), "c_genre": ("word", 0.013),
    "c_team": ("word", 0.012), "c_sport": ("word", 0.012), "c_color": ("word", 0.011),
    "c_store": ("word", 0.011), "c_plan": ("word", 0.010), "c_tier": ("word", 0.010),
    "c_loyalty": ("word", 0.010), "c_membership": ("word", 0.010), "c_status": ("word", 0.009),
    "c_device": ("word", 0.009), "c_os": ("word", 0.008), "c_browser": ("word", 0.008),
    "c_lang": ("word", 0.008), "c_vehicle": ("word", 0.008), "c_pet": ("word", 0.007),
    "c_household": ("word", 0.007), "c_education": ("word", 0.007), "c_income_band": ("word", 0.007),
    "c_marital": ("word", 0.006), "c_size": ("word", 0.006), "c_region": ("word", 0.006),
    "luxury_shopper": ("word", 0.005), "c_newsletter": ("word", 0.005),
    "d_city": ("city", 0.010), "c_country": ("country", 0.010), "gender": ("gender", 0.010),
    "age": ("int:13:99", 0.010), "c_zip": ("int:10000:99999", 0.025), "c_store_id": ("int:1:9999", 0.020),
    "c_kids": ("int:0:6", 0.005),
}
_RANGE_KEYS = {"price": (0.5, 500.0, 0.5), "c_cart_value": (1.0, 2000.0, 0.3), "age": (13, 99, 0.2)}
_CONTAINS_KEYS = {"c_url": 0.5, "c_search": 0.3, "c_page": 0.2}


# --- identities ----------------------------------------------------------------------


def _hash_bytes(users: np.ndarray, salt: int, n_words: int) -> np.ndarray:
    """``8 * n_words`` pseudo-random bytes per user index (splitmix64), as an (n, 8w) matrix."""
    x = np.asarray(users, dtype=_U64) * _U64(n_words) + _U64(salt)
    out = np.empty((len(x), n_words), dtype=_U64)
    for i in range(n_words):
        z = x + _U64(i) + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        out[:, i] = z ^ (z >> _U64(31))
    return out.view(np.uint8)


def platform_uuid_matrix(users: np.ndarray) -> np.ndarray:
    """38-digit platform UUIDs (SPEC §1.3, leading zeros allowed) as an (n, 38) ASCII matrix."""
    return _DIGITS[_hash_bytes(users, 0, 5)[:, :38]]


def crm_id_matrix(users: np.ndarray) -> np.ndarray:
    """CRM IDs: 12–24 of ``[A-Za-z0-9_-]``, starting with a letter or digit (never email-like,
    no ':'), as an (n, 24) ASCII matrix zero-padded on the right."""
    raw = _hash_bytes(users, 1 << 62, 4)
    out = _CRM_CHARS[raw[:, :_CRM_MAX]]
    out[:, 0] = _CRM_CHARS[raw[:, 0] % 62]
    lengths = _CRM_MIN + raw[:, 31] % (_CRM_MAX - _CRM_MIN + 1)
    out[np.arange(_CRM_MAX)[None, :] >= lengths[:, None]] = 0
    return out


def user_uuid(user: int) -> str:
    """The platform UUID of user index ``user`` (column 1 of d_sid and sync files)."""
    return platform_uuid_matrix(np.array([user]))[0].tobytes().decode()


def user_crm_id(user: int) -> str:
    """The CRM ID (a data source 22 DPUUID) of user index ``user``."""
    return crm_id_matrix(np.array([user]))[0].tobytes().rstrip(b"\0").decode()


# --- assembling lines ------------------------------------------------------------------


class _Categorical:
    """Exact O(1) sampling from a fixed discrete distribution (Walker/Vose alias table)."""

    def __init__(self, weights: Sequence[float] | np.ndarray) -> None:
        w = np.asarray(weights, dtype=np.float64)
        n = len(w)
        scaled = (w * n / w.sum()).tolist()
        self.prob = np.ones(n)
        self.alias = np.arange(n)
        small = [i for i, p in enumerate(scaled) if p < 1.0]
        large = [i for i, p in enumerate(scaled) if p >= 1.0]
        while small and large:
            s, big = small.pop(), large.pop()
            self.prob[s], self.alias[s] = scaled[s], big
            scaled[big] += scaled[s] - 1.0
            (small if scaled[big] < 1.0 else large).append(big)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        x = rng.random(size) * len(self.prob)
        i = np.minimum(x.astype(np.int64), len(self.prob) - 1)
        return np.where(x - i < self.prob[i], i, self.alias[i])


def _zipf(n: int, a: float) -> np.ndarray:
    return 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), a)


def _pad(n: np.ndarray | int) -> Any:
    """Round up to a multiple of the copy unit."""
    return (n + _UNIT - 1) // _UNIT * _UNIT


class _Tokens:
    """Byte strings in one ``uint8`` pool, each starting on a copy-unit boundary.

    ``reserve`` bytes after the tokens take each chunk's user-ID heads (``_heads``); the
    pool ends with slack so that ``_assemble`` may read whole units past any token.
    """

    def __init__(self, tokens: Sequence[str | bytes], reserve: int = 0) -> None:
        raw = [t.encode() if isinstance(t, str) else t for t in tokens]
        self.length = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
        slots = _pad(self.length)
        self.offset = np.cumsum(slots) - slots
        self.size = int(slots.sum())
        self.pool = np.zeros(self.size + _pad(reserve) + _SLACK, dtype=np.uint8)
        self.pool[: self.size] = np.frombuffer(b"".join(t.ljust(_pad(len(t)), b"\0") for t in raw), dtype=np.uint8)


def _units(buf: np.ndarray) -> np.ndarray:
    """Every byte offset of ``buf`` as the start of an unaligned copy unit: view[i] = buf[i:i+16]."""
    return np.ndarray((len(buf) - _UNIT + 1,), dtype=_UNIT_DTYPE, buffer=buf, strides=(1,))


def _assemble(
    pool: np.ndarray, offset: np.ndarray, length: np.ndarray, start: np.ndarray | None = None, size: int = 0
) -> np.ndarray:
    """``pool[offset[i]:offset[i] + length[i]]`` for all i, concatenated (or placed at ``start``).

    Offsets are multiples of the 16-byte copy unit, so tokens are read as aligned units and
    written unaligned: unit j of token i goes to ``start[i] + 16j``. A unit may carry bytes
    past the token's end into the place of later tokens. Writing the units from the highest
    j down to 0, and the tokens in order within each j (numpy applies a 1-D fancy assignment
    in index order; the round-trip test checks it), makes the last write of every byte the
    one of the token that owns it — even when a short token writes more units than it has.
    So every token takes part in the low units and only long tokens in the high ones.
    """
    if start is None:
        ends = np.cumsum(length)
        size = int(ends[-1]) if len(ends) else 0
        start = ends - length
    n_units = (length + _UNIT - 1) // _UNIT
    counts = np.bincount(n_units) if len(n_units) else np.zeros(1, dtype=np.int64)
    u_max = len(counts) - 1
    # Units 0..u_all-1 for every token, u_all..u_max-1 only for tokens longer than u_all units.
    longer = len(length) - np.cumsum(counts)
    u_all = int(np.argmin([len(length) * u + longer[u] * (u_max - u) for u in range(u_max + 1)]))
    out = np.empty(size + _UNIT * (u_max + 1), dtype=np.uint8)
    src, dst = pool.view(_UNIT_DTYPE), _units(out)
    unit = offset // _UNIT
    if u_all < u_max:
        sel = np.flatnonzero(n_units > u_all)
        s_long, u_long = start[sel], unit[sel]
        for j in range(u_max - 1, u_all - 1, -1):
            dst[s_long + _UNIT * j] = src[u_long + j]
    s, u = start + _UNIT * (u_all - 1), unit + (u_all - 1)
    for _ in range(u_all):
        dst[s] = src[u]
        s -= _UNIT
        u -= 1
    return out[:size]


def _head_rows(ids: np.ndarray) -> np.ndarray:
    """``\\n<ID>\\t`` rows (width a multiple of 8) from a zero-padded ID matrix.

    Each line starts with the terminator of the line before; the chunk writer drops the
    file's first byte and ends the file with a ``\\n``.
    """
    n, width = ids.shape
    rows = np.zeros((n, _pad(width + 2)), dtype=np.uint8)
    rows[:, 0] = 10
    rows[:, 1 : width + 1] = ids
    rows[np.arange(n), 1 + (ids != 0).sum(axis=1)] = 9
    return rows


def _heads(rows: np.ndarray, tokens: _Tokens) -> tuple[np.ndarray, np.ndarray]:
    """Copy head rows into the reserved part of the pool; their offsets and lengths."""
    n, width = rows.shape
    tokens.pool[tokens.size : tokens.size + n * width] = rows.reshape(-1)
    offset = tokens.size + np.arange(n, dtype=np.int64) * width
    return offset, (rows != 0).sum(axis=1).astype(np.int64)


def _lines(
    head_offset: np.ndarray, head_length: np.ndarray, k: np.ndarray, item_offset: np.ndarray, item_length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Token order of a chunk: each line's head followed by its ``k`` items."""
    n, m = len(k), len(item_offset)
    head_pos = np.arange(n) + (np.cumsum(k) - k)
    item_pos = np.ones(n + m, dtype=bool)
    item_pos[head_pos] = False
    offset = np.empty(n + m, dtype=np.int64)
    length = np.empty(n + m, dtype=np.int64)
    offset[head_pos], length[head_pos] = head_offset, head_length
    offset[item_pos], length[item_pos] = item_offset, item_length
    return offset, length


def _chunk_rng(seed: int, tag: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, tag, chunk])


# --- output ------------------------------------------------------------------------------


class _Sink:
    """Writes chunks to a plain file, or gzip (pigz -6 when installed, else python-isal)."""

    def __init__(self, path: str | os.PathLike[str], compressor: str = "auto") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.bytes = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: BinaryIO | None = None
        self._fh: BinaryIO
        if self.path.suffix != ".gz":
            self._fh = open(self.path, "wb")
            return
        pigz = shutil.which("pigz") if compressor in ("auto", "pigz") else None
        if compressor == "pigz" and pigz is None:
            raise RuntimeError("pigz is not installed")
        self._out = open(self.path, "wb")
        if pigz:
            self._proc = subprocess.Popen([pigz, f"-{GZIP_LEVEL}", "-n", "-c"], stdin=subprocess.PIPE, stdout=self._out)
            assert self._proc.stdin is not None
            self._fh = self._proc.stdin
        else:
            from isal import igzip_threaded

            # A background thread compresses while numpy builds the next chunk.
            self._fh = igzip_threaded.open(self._out, "wb", compresslevel=ISAL_LEVEL, threads=1)

    def write(self, data: np.ndarray) -> None:
        self._fh.write(memoryview(data))
        self.bytes += len(data)

    def close(self) -> None:
        self._fh.close()
        if self._proc is not None and self._proc.wait() != 0:
            raise RuntimeError(f"pigz failed with exit code {self._proc.returncode}")
        if self._out is not None:
            self._out.close()


def _write_chunks(
    path: str | os.PathLike[str],
    n_lines: int,
    build: Callable[[int, int, int], np.ndarray],
    compressor: str,
    chunk_lines: int,
) -> dict[str, Any]:
    """Write ``build(chunk_index, first_line, n)`` for every chunk; each chunk starts with "\\n"."""
    sink = _Sink(path, compressor)
    try:
        for index, start in enumerate(range(0, n_lines, chunk_lines)):
            chunk = build(index, start, min(chunk_lines, n_lines - start))
            sink.write(chunk[1:] if index == 0 else chunk)
        if n_lines:
            sink.write(np.frombuffer(b"\n", dtype=np.uint8))
    finally:
        sink.close()
    return {"path": str(sink.path), "lines": n_lines, "bytes": sink.bytes, "file_bytes": sink.path.stat().st_size}


# --- d_sid files ----------------------------------------------------------------------------

_DSID_MAX_ITEMS = 8
_DSID_SEPS = ("", ",", ", ")


class _DsidItems:
    """Item tokens ``<sep>d_sid=N`` / ``<sep>d_unsid=N`` and a Zipf sampler over the SIDs."""

    def __init__(self, sids: np.ndarray, zipf_a: float, seed: int, chunk_lines: int) -> None:
        self.n = len(sids)
        # The trait behind each Zipf rank is random, not simply the lowest SID.
        weights = np.empty(self.n)
        weights[np.random.default_rng([seed, 2121]).permutation(self.n)] = _zipf(self.n, zipf_a)
        self.sids = _Categorical(weights)
        names = [f"{sep}{d}={s}" for sep in _DSID_SEPS for d in ("d_sid", "d_unsid") for s in sids.tolist()]
        self.tokens = _Tokens(names, reserve=chunk_lines * _pad(40))  # heads: LF, 38 digits, TAB

    def token(self, sep: np.ndarray, unsid: np.ndarray, sid: np.ndarray) -> np.ndarray:
        return (sep * 2 + unsid) * self.n + sid


def _dedupe_in_line(values: np.ndarray, line: np.ndarray, redraw: Callable[[int], np.ndarray], window: int) -> None:
    """Redraw values repeated within a line (a few passes; a rare repeat may remain, as in real files)."""
    for _ in range(4):
        dup = np.zeros(len(values), dtype=bool)
        for shift in range(1, window):
            dup[shift:] |= (values[shift:] == values[:-shift]) & (line[shift:] == line[:-shift])
        if not dup.any():
            return
        values[dup] = redraw(int(dup.sum()))


def _dsid_chunk(rng: np.random.Generator, n: int, n_users: int, items: _DsidItems) -> np.ndarray:
    k = np.minimum(rng.geometric(0.32, n), _DSID_MAX_ITEMS)  # 1..8 items, mean ≈ 2.8
    m = int(k.sum())
    line = np.repeat(np.arange(n), k)
    first = np.zeros(m, dtype=bool)
    first[np.cumsum(k) - k] = True
    sid = items.sids.sample(rng, m)
    _dedupe_in_line(sid, line, lambda c: items.sids.sample(rng, c), _DSID_MAX_ITEMS)
    u = rng.random(m)
    unsid = (u < 0.02).astype(np.int64)  # occasional d_unsid
    sep = np.where(first, 0, np.where(u > 0.97, 2, 1))  # ~3 % ", "
    token = items.token(sep, unsid, sid)
    heads = _heads(_head_rows(platform_uuid_matrix(rng.integers(0, n_users, n))), items.tokens)
    offset, length = _lines(*heads, k, items.tokens.offset[token], items.tokens.length[token])
    return _assemble(items.tokens.pool, offset, length)


def write_dsid_file(
    path: str | os.PathLike[str],
    n_lines: int,
    *,
    seed: int = 1,
    n_users: int | None = None,
    sids: Iterable[int] = range(FIRST_ONBOARDED_SID, FIRST_ONBOARDED_SID + 5000),
    zipf_a: float = 1.3,
    compressor: str = "auto",
) -> dict[str, Any]:
    """Write ``<38-digit UUID> TAB d_sid=N,d_sid=M,...`` lines (SPEC §3.4); gzip if ``.gz``.

    1–8 items per line (mean ≈ 2.8), Zipf-distributed traits (exponent ``zipf_a``; a trait
    rarely repeats within a line), ~2 % ``d_unsid=`` items, ~3 % ``, `` separators. Users
    are drawn uniformly from ``n_users`` (default ``n_lines``) and map to ``user_uuid(u)``.
    Returns ``{"path", "lines", "bytes" (uncompressed), "file_bytes"}``.
    """
    chunk_lines = CHUNK_LINES
    items = _DsidItems(np.fromiter(sids, dtype=np.int64), zipf_a, seed, chunk_lines)
    users = n_users or max(n_lines, 1)

    def build(index: int, _start: int, n: int) -> np.ndarray:
        return _dsid_chunk(_chunk_rng(seed, 21, index), n, users, items)

    return _write_chunks(path, n_lines, build, compressor, chunk_lines)


# --- the benchmark taxonomy ---------------------------------------------------------------


def _allocate(total: int, shares: dict[str, float], caps: dict[str, int]) -> dict[str, int]:
    """Split ``total`` by ``shares`` without exceeding any cap (largest remainder)."""
    alloc = dict.fromkeys(shares, 0)
    left, open_keys = total, set(shares)
    while left > 0 and open_keys:
        weight = sum(shares[k] for k in open_keys)
        raw = {k: left * shares[k] / weight for k in open_keys}
        step = {k: min(int(raw[k]), caps[k] - alloc[k]) for k in open_keys}
        if sum(step.values()) == 0:
            for k in sorted(open_keys, key=lambda k: raw[k] - int(raw[k]), reverse=True)[:left]:
                step[k] = min(1, caps[k] - alloc[k])
        for k, s in step.items():
            alloc[k] += s
            left -= s
        open_keys = {k for k in open_keys if alloc[k] < caps[k]}
    return alloc


def _word_values(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct values: single words first, then two-word and dashed combinations."""
    words = [str(w) for w in rng.permutation(_WORDS)]
    out = dict.fromkeys(words[:n])
    i = 0
    while len(out) < n:
        a, b = words[i % len(words)], words[(i * 7 + 1 + i // len(words)) % len(words)]
        if a != b:
            out[f"{a} {b}" if i % 3 else f"{a}-{b}"] = None
        i += 1
    return list(out)


def _key_values(rng: np.random.Generator, kind: str, n: int) -> list[str]:
    if kind == "code":
        return [str(v) for v in rng.choice(np.arange(10_000, 100_000), n, replace=False)]
    if kind == "city":
        return list(rng.permutation(_CITIES))[:n]
    if kind == "country":
        return list(rng.permutation(_COUNTRIES))[:n]
    if kind == "gender":
        return _GENDERS[:n]
    if kind.startswith("int:"):
        lo, hi = map(int, kind.split(":")[1:])
        return [str(v) for v in rng.choice(np.arange(lo, hi + 1), n, replace=False)]
    return _word_values(rng, n)


def _capacity(kind: str) -> int:
    if kind.startswith("int:"):
        lo, hi = map(int, kind.split(":")[1:])
        return hi - lo + 1
    return {"city": len(_CITIES), "country": len(_COUNTRIES), "gender": len(_GENDERS), "code": 90_000}.get(kind, 40_000)


def _trait_name(text: str) -> str:
    # D-40: names should avoid commas, dashes and pipes.
    return re.sub(r"[,|\-]", " ", text)[:255]


def bench_taxonomy(
    n_onboarded: int = 5000,
    n_equality_rules: int = 20_000,
    n_range_rules: int = 50,
    n_contains_rules: int = 50,
    seed: int = 1,
) -> dict[str, Any]:
    """The benchmark taxonomy as a SPEC §11.2 dict (``yaml.safe_dump`` it to get the file).

    Partner 7 ``acme``; data source 21 (cookie, platform UUIDs in column 1) owning
    ``n_onboarded`` rule-less onboarded traits, SIDs 100000..; data source 22 (cross-device,
    CRM IDs) owning rule traits from SID 200000: ``key == "value"`` equality rules over
    ~50 keys (40 % integration codes ``ic == "12345"``), ``price >= 10 AND price <= 50``
    range rules and ``c_url contains "sport"`` rules.
    """
    rng = np.random.default_rng([seed, 1122])
    traits: list[dict[str, Any]] = [
        {"sid": FIRST_ONBOARDED_SID + i, "name": f"Acme site trait {FIRST_ONBOARDED_SID + i}",
         "data_source": DSID_DPID, "type": "onboarded", "ttl_days": 120}
        for i in range(n_onboarded)
    ]
    rules: list[tuple[str, str]] = []
    alloc = _allocate(n_equality_rules, {k: s for k, (_, s) in _EQ_KEYS.items()},
                      {k: _capacity(kind) for k, (kind, _) in _EQ_KEYS.items()})
    for key, (kind, _) in _EQ_KEYS.items():
        for value in _key_values(rng, kind, alloc[key]):
            # Numbers are mostly quoted ("quoted numerics"), sometimes bare literals.
            literal = value if kind.startswith("int:") and rng.random() < 0.15 else f'"{value}"'
            rules.append((f"{key} == {literal}", f"{key} {value}"))
    for key, n in _allocate(n_range_rules, {k: v[2] for k, v in _RANGE_KEYS.items()},
                            dict.fromkeys(_RANGE_KEYS, 10**6)).items():
        lo_all, hi_all, _ = _RANGE_KEYS[key]
        for _ in range(n):
            lo = round(float(rng.uniform(lo_all, hi_all * 0.6)), 0 if key == "age" else 2)
            hi = round(lo + float(rng.uniform(1, (hi_all - lo_all) * 0.3)), 0 if key == "age" else 2)
            fmt = (lambda v: str(int(v))) if key == "age" or rng.random() < 0.5 else (lambda v: f"{v:.2f}")
            rules.append((f"{key} >= {fmt(lo)} AND {key} <= {fmt(hi)}", f"{key} from {fmt(lo)} to {fmt(hi)}"))
    words = list(rng.permutation(_WORDS))
    for key, n in _allocate(n_contains_rules, _CONTAINS_KEYS, dict.fromkeys(_CONTAINS_KEYS, len(words))).items():
        for word in words[:n]:
            rules.append((f'{key} contains "{word}"', f"{key} contains {word}"))
        words = words[n:] + words[:n]
    ttl = rng.choice([120, 30, 0, 365], len(rules), p=[0.8, 0.1, 0.05, 0.05])
    traits += [
        {"sid": FIRST_RULE_SID + i, "name": _trait_name(name), "data_source": KV_DPID, "type": "onboarded",
         "rule": rule, "ttl_days": int(ttl[i])}
        for i, (rule, name) in enumerate(rules)
    ]
    return {
        "partners": [{"pid": PARTNER_PID, "name": "acme", "contacts": ["ops@acme.example"]}],
        "data_sources": [
            {"dpid": DSID_DPID, "owner": PARTNER_PID, "name": "Acme site cookies", "id_type": "cookie",
             "inbound_id_type": "platform_uuid", "notify": ["web-team@acme.example"]},
            {"dpid": KV_DPID, "owner": PARTNER_PID, "name": "Acme CRM", "id_type": "cross_device",
             "inbound_id_type": "customer_id", "id_definition": "person", "notify": ["crm-team@acme.example"]},
        ],
        "traits": traits,
    }


# --- key-value files -----------------------------------------------------------------------

def _random_strings(alphabet: bytes, length: int) -> Callable[[np.random.Generator, int], list[str]]:
    chars = np.frombuffer(alphabet, dtype=np.uint8)
    return lambda rng, n: [r.tobytes().decode() for r in chars[rng.integers(0, len(chars), (n, length))]]


# Keys partners send that no rule reads: they become unused signals. p_ values are private (§4.2).
_UNRULED_KEYS: dict[str, Callable[[np.random.Generator, int], list[str]]] = {
    "c_session": _random_strings(b"abcdefghijklmnopqrstuvwxyz0123456789", 16),
    "c_referrer": lambda rng, n: [f"www.{a}.example/{b}" for a, b in zip(rng.choice(_WORDS, n), rng.choice(_WORDS, n))],
    "c_visits": lambda rng, n: [str(v) for v in rng.integers(1, 500, n)],
    "p_email_sha256": _random_strings(b"0123456789abcdef", 64),
}

_EQ_RE = re.compile(r'^\s*([A-Za-z0-9_-]+)\s*==\s*(?:"([^"]*)"|(-?\d+(?:\.\d+)?))\s*$')
_RANGE_RE = re.compile(
    r"^\s*\(?\s*([A-Za-z0-9_-]+)\s*(?:>=|=>)\s*(-?[\d.]+)\s+AND\s+\1\s*<=\s*(-?[\d.]+)\s*\)?\s*$", re.I
)
_CONTAINS_RE = re.compile(r'^\s*([A-Za-z0-9_-]+)\s+contains\s+"([^"]*)"\s*$', re.I)


class _KvVocabulary:
    """What a key-value line may say, derived from a taxonomy's rules.

    Per key: the values its equality rules name plus ~25 % values no rule names, numbers
    around the range rules' bounds, URL paths or search phrases around the ``contains``
    literals. Keys are weighted by how many rules use them; within a key, values are Zipf
    distributed over a random order, so popular values mostly (not always) match a rule.
    """

    SEPS = ("", ",", ", ", " , ", ",,")  # ",," leaves an empty item (Appendix A)
    EQS = ("=", " = ", "= ", " =")
    KEY_FORMS = 5  # key, "key", Mixed_Key, "Mixed_Key", -key
    VALUE_FORMS = 4  # value, "value", Value, "Value"

    def __init__(self, taxonomy: dict[str, Any], seed: int) -> None:
        rng = np.random.default_rng([seed, 2233])
        eq: dict[str, list[str]] = {}
        ranges: dict[str, list[tuple[str, str]]] = {}
        contains: dict[str, list[str]] = {}
        n_rules: dict[str, int] = {}
        for trait in taxonomy.get("traits", []):
            rule = trait.get("rule") or ""
            if m := _EQ_RE.match(rule):
                eq.setdefault(m[1], []).append(m[2] if m[2] is not None else m[3])
            elif m := _RANGE_RE.match(rule):
                ranges.setdefault(m[1], []).append((m[2], m[3]))
            elif m := _CONTAINS_RE.match(rule):
                contains.setdefault(m[1], []).append(m[2])
            else:
                continue
            n_rules[m[1]] = n_rules.get(m[1], 0) + 1
        if not n_rules:
            raise ValueError("the taxonomy has no equality, range or contains rules to write key-value lines for")
        ruled = sorted(n_rules)
        # Keys no rule reads (unused signals), ~8 % of the pairs.
        unruled = [k for k in _UNRULED_KEYS if k not in n_rules]
        self.keys = ruled + unruled
        key_weight = np.array([(n_rules[k] + 20) ** 0.6 for k in ruled])
        unruled_weight = np.full(len(unruled), 0.08 / max(1, len(unruled)))
        key_weight = np.concatenate([key_weight / key_weight.sum() * (1 - unruled_weight.sum()), unruled_weight])
        values: list[str] = []
        weights: list[np.ndarray] = []
        value_key: list[int] = []
        for i, key in enumerate(self.keys):
            vals = list(dict.fromkeys(eq.get(key, [])))
            vals += self._misses(rng, vals, max(5, len(vals) // 4))
            if key in ranges:
                vals += self._numbers(rng, ranges[key], 1000)
            if key in contains:
                vals += self._texts(rng, key, contains[key], 600)
            if key in unruled:
                vals += _UNRULED_KEYS[key](rng, 500)
            vals = [v for v in dict.fromkeys(vals) if v and not set(v) & set('",=\t\r\n')]
            w = np.empty(len(vals))
            w[rng.permutation(len(vals))] = _zipf(len(vals), 1.1)
            weights.append(w / w.sum() * key_weight[i])
            values += vals
            value_key += [i] * len(vals)
        self.value_key = np.array(value_key, dtype=np.int64)
        self.values = _Categorical(np.concatenate(weights))
        ic = self.keys.index("ic") if "ic" in self.keys else -1
        self.bare_ok = (self.value_key == ic) & np.array([v.isdigit() for v in values])
        key_forms = [(k, f'"{k}"', _mixed(k), f'"{_mixed(k)}"', f"-{k}") for k in self.keys]
        prefixes = [
            f"{sep}{form}{eq_}" for forms in key_forms for sep in self.SEPS for form in forms for eq_ in self.EQS
        ]
        self.bare0 = len(prefixes)
        self.value0 = self.bare0 + len(self.SEPS)
        forms = [f for v in values for f in (v, f'"{v}"', v.capitalize(), f'"{v.capitalize()}"')]
        self.tokens = _Tokens(prefixes + list(self.SEPS) + forms)

    def prefix(self, key: np.ndarray, sep: np.ndarray, form: np.ndarray, eq_: np.ndarray) -> np.ndarray:
        return ((key * len(self.SEPS) + sep) * self.KEY_FORMS + form) * len(self.EQS) + eq_

    @staticmethod
    def _misses(rng: np.random.Generator, taken: list[str], n: int) -> list[str]:
        seen = set(taken)
        if taken and all(v.isdigit() for v in taken):
            width = max(len(v) for v in taken)
            cand = [str(v) for v in rng.integers(10 ** (width - 1) if width > 1 else 0, 10**width, n * 3)]
        else:
            cand = [f"{a} {b}" for a, b in zip(rng.choice(_WORDS, n * 3), rng.choice(_WORDS, n * 3))]
        return [c for c in dict.fromkeys(cand) if c not in seen][:n]

    @staticmethod
    def _numbers(rng: np.random.Generator, bounds: list[tuple[str, str]], n: int) -> list[str]:
        hi = max(float(h) for _, h in bounds) * 1.3
        nums = rng.uniform(0, hi, n)
        if all("." not in lo + h for lo, h in bounds):
            return [str(int(v)) for v in nums]
        return [f"{v:.2f}" if i % 3 else str(int(v)) for i, v in enumerate(nums)]

    @staticmethod
    def _texts(rng: np.random.Generator, key: str, literals: list[str], n: int) -> list[str]:
        pool = np.array(literals + list(_WORDS))
        p = np.where(np.arange(len(pool)) < len(literals), 3.0, 1.0)
        a, b = rng.choice(pool, n, p=p / p.sum()), rng.choice(_WORDS, n)
        num = rng.integers(1, 999, n)
        if "url" in key or "page" in key:
            return [f"www.acme.example/{x}/{y}-{z}" for x, y, z in zip(a, b, num)]
        return [f"{y} {x}" if z % 2 else f"{x} {y}" for x, y, z in zip(a, b, num)]


def _mixed(key: str) -> str:
    return key.upper() if len(key) <= 3 else "_".join(p.capitalize() for p in key.split("_"))


_KEY_FORM = _Categorical([0.62, 0.28, 0.05, 0.03, 0.02])
_EQ = _Categorical([0.85, 0.10, 0.03, 0.02])
_VALUE_FORM = _Categorical([0.62, 0.30, 0.05, 0.03])
_SEP = _Categorical([0.90, 0.07, 0.02, 0.01])  # ",", ", ", " , ", ",,"


class _KvItems:
    """A pool of rendered ``<sep><key><eq><value>`` items that a chunk's lines draw from.

    Drawing ~8M items per million lines one by one costs five categorical draws and two
    token copies each; a pool of ``size`` items drawn from the same distribution, fresh
    for every chunk, keeps the mix (keys, values, quoting, spacing, bare codes) at a
    fraction of the cost and stays in cache. Each item is rendered twice: with its
    separator (``later``) and without it, for a line's first item (``first``).
    """

    def __init__(self, vocab: _KvVocabulary, size: int, chunk_lines: int) -> None:
        self.vocab, self.size = vocab, size
        # Slots: at most 2 × (separator + quoted key + " = " + quoted value), rounded up.
        slot_bytes = 2 * _pad(int(vocab.tokens.length.max()) * 2)
        self.tokens = _Tokens([], reserve=size * slot_bytes + chunk_lines * _pad(_CRM_MAX + 2))

    def refresh(self, rng: np.random.Generator) -> None:
        vocab, size = self.vocab, self.size
        value = vocab.values.sample(rng, size)
        key, sep = vocab.value_key[value], _SEP.sample(rng, size) + 1
        form, eq_ = _KEY_FORM.sample(rng, size), _EQ.sample(rng, size)
        later, first = vocab.prefix(key, sep, form, eq_), vocab.prefix(key, 0, form, eq_)
        value_form = _VALUE_FORM.sample(rng, size)
        # Half of the integration codes come bare: "12345" means ic=12345 (SPEC §3.4).
        bare = vocab.bare_ok[value] & (rng.random(size) < 0.5)
        later[bare], first[bare], value_form[bare] = vocab.bare0 + sep[bare], vocab.bare0, 0
        value_token = vocab.value0 + value * vocab.VALUE_FORMS + value_form

        t = vocab.tokens
        # Token order: later prefix, value, first prefix, value — each item's two slots.
        tok = np.column_stack([later, value_token, first, value_token]).reshape(-1)
        length = t.length[tok].reshape(size, 4)
        self.later_length = length[:, 0] + length[:, 1]
        self.first_length = length[:, 2] + length[:, 3]
        slots = np.column_stack([_pad(self.later_length), _pad(self.first_length)]).reshape(-1)
        slot_start = (np.cumsum(slots) - slots).reshape(size, 2)
        self.later_offset, self.first_offset = slot_start[:, 0], slot_start[:, 1]
        start = np.column_stack(
            [slot_start[:, 0], slot_start[:, 0] + length[:, 0], slot_start[:, 1], slot_start[:, 1] + length[:, 2]]
        ).reshape(-1)
        rendered = _assemble(t.pool, t.offset[tok], length.reshape(-1), start, int(slots.sum()))
        self.tokens.pool[: len(rendered)] = rendered
        self.tokens.size = len(rendered)


def _kv_chunk(rng: np.random.Generator, n: int, n_users: int, items: _KvItems) -> np.ndarray:
    items.refresh(rng)
    k = 3 + rng.binomial(12, 0.4, n)  # 3..15 pairs, mean ≈ 7.8
    pick = rng.integers(0, items.size, int(k.sum()))
    offset, length = items.later_offset[pick], items.later_length[pick]
    first = np.cumsum(k) - k
    offset[first], length[first] = items.first_offset[pick[first]], items.first_length[pick[first]]
    heads = _heads(_head_rows(crm_id_matrix(rng.integers(0, n_users, n))), items.tokens)
    return _assemble(items.tokens.pool, *_lines(*heads, k, offset, length))


def write_kv_file(
    path: str | os.PathLike[str],
    n_lines: int,
    *,
    seed: int = 1,
    taxonomy: dict[str, Any] | None = None,
    n_users: int | None = None,
    compressor: str = "auto",
) -> dict[str, Any]:
    """Write ``<CRM ID> TAB key=value,...`` lines (SPEC §3.4) for data source 22; gzip if ``.gz``.

    3–15 pairs per line (mean ≈ 7.8) over the keys of the taxonomy's rules (default
    ``bench_taxonomy()``); values match rules often but not always; mixed quoting (``k=v``,
    ``"k"=v``, ``k="v"``, ``"k"="v"``), spaces around ``=`` and commas, mixed-case and dashed
    keys, ~1 % empty items (``,,``), bare integration codes. Users are drawn uniformly from
    ``n_users`` (default ``n_lines``) and map to ``user_crm_id(u)``.
    Returns ``{"path", "lines", "bytes" (uncompressed), "file_bytes"}``.
    """
    vocab = _KvVocabulary(taxonomy if taxonomy is not None else bench_taxonomy(), seed)
    chunk_lines = KV_CHUNK_LINES
    items = _KvItems(vocab, min(KV_ITEM_POOL, max(1024, 8 * n_lines)), chunk_lines)
    users = n_users or max(n_lines, 1)

    def build(index: int, _start: int, n: int) -> np.ndarray:
        return _kv_chunk(_chunk_rng(seed, 22, index), n, users, items)

    return _write_chunks(path, n_lines, build, compressor, chunk_lines)


# --- ID-sync files -------------------------------------------------------------------------


def write_sync_file(
    path: str | os.PathLike[str],
    pairs: int,
    *,
    seed: int = 1,
    n_users: int | None = None,
    compressor: str = "auto",
) -> dict[str, Any]:
    """Write an ``adobe_id_0_<dpid>_<ts>.sync`` body: ``<38-digit UUID> TAB <CRM ID>`` (§2.3.2).

    Each row links ``user_uuid(u)`` to ``user_crm_id(u)`` for ``pairs`` distinct users out
    of ``n_users`` (default ``pairs``), so the customers of ``write_kv_file`` (same
    ``n_users``) become linked to devices. Returns the same stats as the data writers.
    """
    users = n_users or max(pairs, 1)
    if pairs > users:
        raise ValueError("pairs must not exceed n_users")
    order = np.random.default_rng([seed, 33]).permutation(users)[:pairs]

    def build(_index: int, start: int, n: int) -> np.ndarray:
        u = order[start : start + n]
        heads = _head_rows(platform_uuid_matrix(u))
        rows = np.hstack([heads, crm_id_matrix(u)])
        flat = rows.reshape(-1)
        return flat[flat != 0]

    return _write_chunks(path, pairs, build, compressor, CHUNK_LINES)


# --- malformed lines -------------------------------------------------------------------------


def bad_lines() -> list[str]:
    """Lines (no terminator) that are Format Errors in a customer-ID (data source 22) file.

    In order: no TAB; ``d_sid=x``; a bare word; an unbalanced quote; an email-like ID; a
    colon in the ID; an encoded colon (``%3A``) in the ID; no items; only empty items; a TAB
    as value; an empty value; ``N:M`` with M not 0/-1; a line over 102,400 bytes.
    """
    crm = user_crm_id(0)
    long_items = ",".join(f"d_sid={FIRST_ONBOARDED_SID + i % 5000}" for i in range(9000))
    return [
        f"{crm} d_sid=100000",
        f"{crm}\td_sid=x",
        f"{crm}\ttablet",
        f'{crm}\t"c_brand=acme',
        "john.doe@example.com\td_sid=100000",
        f"{crm[:6]}:{crm[6:]}\td_sid=100000",
        f"{crm[:6]}%3A{crm[6:]}\td_sid=100000",
        f"{crm}\t",
        f"{crm}\t,,",
        f"{crm}\tc_size=\t",
        f"{crm}\tc_brand=",
        f"{crm}\t100000:5",
        f"{crm}\t{long_items}",
    ]


__all__ = [
    "bad_lines",
    "bench_taxonomy",
    "crm_id_matrix",
    "platform_uuid_matrix",
    "user_crm_id",
    "user_uuid",
    "write_dsid_file",
    "write_kv_file",
    "write_sync_file",
]
