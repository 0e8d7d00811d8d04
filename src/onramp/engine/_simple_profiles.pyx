# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The native pass of ADR 0007: one chunk's simple profiles, merged in native memory.

A *simple line* is ASCII and reads ``<38-digit platform UUID> TAB d_sid=<1-9 digits>[,
spaces* d_sid=<1-9 digits>]*`` after its trailing spaces are trimmed (SPEC §3.4-§3.6,
``data_plan.SIMPLE_LINE_RE`` without removals). A *simple profile* has only simple lines
in the chunk, no more than the per-user cap. For those the `.sync` result needs no
ordering: the profile's final adds are the distinct valid trait IDs of all its lines, and
each line's counters are its own (``data_plan._evaluate_simple_lines``, "direct" lines).

Any other line whose first field is a 38-digit ID marks that ID's profile as not simple,
so its lines, simple or not, all take the SQL plan. That may send a profile to SQL that
did not need it (a line the SQL plan would reject before it counts), never the reverse.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef enum:
    TAB = 9
    SPACE = 32
    COMMA = 44
    MAX_DIGITS = 9  # D-24: trait IDs are INTEGER; nine digits always fit
    UUID_DIGITS = 38  # platform UUIDs (SPEC §1.8)
    HALF = 19  # 19 decimal digits always fit in 64 bits


cdef inline bint _uuid_key(const uint8_t[::1] data, Py_ssize_t s, Py_ssize_t e, uint64_t* hi, uint64_t* lo) noexcept nogil:
    """The line's first field as two 19-digit halves, when it is 38 digits followed by a TAB."""
    cdef Py_ssize_t k
    cdef uint64_t a = 0, b = 0
    cdef uint8_t c
    if e - s <= UUID_DIGITS or data[s + UUID_DIGITS] != TAB:
        return False
    for k in range(HALF):
        c = data[s + k]
        if c < 48 or c > 57:
            return False
        a = a * 10 + (c - 48)
    for k in range(HALF, UUID_DIGITS):
        c = data[s + k]
        if c < 48 or c > 57:
            return False
        b = b * 10 + (c - 48)
    hi[0] = a
    lo[0] = b
    return True


ctypedef struct Entry:  # one hash-table slot: a profile and its state, in one cache line
    uint64_t hi
    uint64_t lo
    int64_t first_line  # where its ID can be read
    int32_t p  # dense profile number, -1: empty slot
    int32_t nlines  # its simple lines
    int32_t tainted  # it has a line that is not simple


cdef extern from *:
    void __builtin_prefetch(const void* address) nogil


cdef inline uint64_t _hash(uint64_t hi, uint64_t lo) noexcept nogil:
    cdef uint64_t h = (hi * <uint64_t>0x9E3779B97F4A7C15) ^ (lo * <uint64_t>0xC2B2AE3D27D4EB4F)
    return h ^ (h >> 29)


cdef inline Entry* _find_or_add(Entry* table, uint64_t mask, uint64_t h, uint64_t hi, uint64_t lo, int32_t* size) noexcept nogil:
    cdef uint64_t i = h & mask
    while table[i].p != -1:
        if table[i].hi == hi and table[i].lo == lo:
            return &table[i]
        i = (i + 1) & mask
    table[i].p = size[0]
    table[i].hi = hi
    table[i].lo = lo
    size[0] += 1
    return &table[i]


cdef void _pass_one(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends, const uint8_t[::1] skip,
                    const uint8_t[::1] status, int64_t lo, Entry* table, uint64_t mask, int32_t* n_prof,
                    int32_t[::1] line_prof, int32_t[:, ::1] counts, int64_t[::1] line_off, int32_t[::1] vals,
                    int32_t[::1] seen, int32_t* n_vals, uint64_t[::1] khi, uint64_t[::1] klo_a, uint64_t[::1] khash) noexcept nogil:
    """Parse each line; number the profiles; taint those with a line that is not simple.
    A simple line's distinct valid trait IDs go to ``vals[line_off[i]:line_off[i + 1]]``."""
    cdef Py_ssize_t n = starts.shape[0], i, s, e, q, k
    cdef int64_t span = status.shape[0], v, idx
    cdef int32_t nvals = 0, first, items, used, failed, stamp = 0
    cdef uint64_t hi, klo
    cdef uint8_t st
    cdef bint ok
    cdef Entry* entry
    # The IDs first, so that each lookup's slot can be fetched from memory ahead of it.
    for i in range(n):
        if _uuid_key(data, starts[i], ends[i], &hi, &klo):
            khi[i] = hi
            klo_a[i] = klo
            khash[i] = _hash(hi, klo)
        else:
            khash[i] = 0  # no 38-digit ID before a TAB: not a line of a simple profile
            khi[i] = 0
    for i in range(n):
        line_off[i] = nvals
        if i + 12 < n and khash[i + 12] != 0:
            __builtin_prefetch(&table[khash[i + 12] & mask])
        if khash[i] == 0 and khi[i] == 0:
            continue
        s = starts[i]
        e = ends[i]
        entry = _find_or_add(table, mask, khash[i], khi[i], klo_a[i], n_prof)
        if entry.nlines == 0 and not entry.tainted:
            entry.first_line = i
        if skip[i]:
            entry.tainted = 1
            continue
        while e > s and data[e - 1] == SPACE:  # D-25: trailing spaces are trimmed
            e -= 1
        q = s + UUID_DIGITS + 1
        ok = q < e
        first = nvals
        items = 0
        used = 0
        failed = 0
        stamp += 1
        while ok:
            if e - q < 7 or data[q] != 100 or data[q + 1] != 95 or data[q + 2] != 115 \
                    or data[q + 3] != 105 or data[q + 4] != 100 or data[q + 5] != 61:  # "d_sid="
                ok = False
                break
            q += 6
            k = q
            v = 0
            while q < e and q - k <= MAX_DIGITS and 48 <= data[q] <= 57:
                v = v * 10 + (data[q] - 48)
                q += 1
            if q == k or q - k > MAX_DIGITS:
                ok = False
                break
            items += 1
            idx = v - lo
            st = status[idx] if 0 <= idx < span else 0
            if st == 1:
                used += 1
                if seen[idx] != stamp:
                    seen[idx] = stamp
                    vals[nvals] = <int32_t>v
                    nvals += 1
            elif st == 2:
                failed += 1
            if q == e:
                break
            if data[q] != COMMA:
                ok = False
                break
            q += 1
            while q < e and data[q] == SPACE:
                q += 1
        if not ok:
            nvals = first
            entry.tainted = 1
            continue
        line_prof[i] = entry.p
        entry.nlines += 1
        counts[0, i] = items
        counts[1, i] = used
        counts[2, i] = failed
        counts[3, i] = nvals - first
    line_off[n] = nvals
    n_vals[0] = nvals


def merge_simple_profiles(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends,
                          const uint8_t[::1] skip, const uint8_t[::1] status, int64_t lo, int32_t cap):
    """Merge the simple profiles of one chunk's lines ``data[starts[i]:ends[i]]``.

    ``skip``: lines that cannot be simple (too long, control characters); ``status[sid - lo]``:
    1 valid, 2 failed validation, 0 unknown (the engine's ``trait_lut``).

    Returns a dict of numpy arrays: per line ``simple`` (the line belongs to a simple
    profile), ``items``, ``used``, ``failed``, ``realized`` (distinct valid trait IDs); per
    simple profile with a valid trait, its ID (``ids``: 38 bytes each) and its distinct
    valid trait IDs as ``offsets`` / ``sids``.
    """
    cdef Py_ssize_t n = starts.shape[0], i, j, k
    cdef int64_t span = status.shape[0], idx
    cdef int32_t nvals = 0, n_prof = 0, stamp, p
    line_prof_a = np.full(n, -1, dtype=np.int32)
    counts_a = np.zeros((4, n), dtype=np.int32)  # items, used, failed, realized
    line_off_a = np.zeros(n + 1, dtype=np.int64)
    vals_a = np.empty(max(1, data.shape[0] // 7 + 1), dtype=np.int32)  # an item takes >= 7 bytes
    seen_a = np.zeros(max(1, span), dtype=np.int32)
    cdef int32_t[::1] line_prof = line_prof_a
    cdef int32_t[:, ::1] counts = counts_a
    cdef int64_t[::1] line_off = line_off_a
    cdef int32_t[::1] vals = vals_a
    cdef int32_t[::1] seen = seen_a
    tainted_a = np.zeros(n + 1, dtype=np.uint8)
    nlines_a = np.zeros(n + 1, dtype=np.int32)
    first_a = np.zeros(n + 1, dtype=np.int64)
    cdef uint8_t[::1] tainted = tainted_a
    cdef int32_t[::1] nlines = nlines_a
    cdef int64_t[::1] first_line = first_a
    khi_a = np.empty(n, dtype=np.uint64)
    klo_a = np.empty(n, dtype=np.uint64)
    khash_a = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] khi = khi_a
    cdef uint64_t[::1] klo = klo_a
    cdef uint64_t[::1] khash = khash_a
    cdef uint64_t slots = 16, slot
    while slots < 2 * <uint64_t>n + 2:
        slots *= 2
    cdef Entry* table = <Entry*>malloc(slots * sizeof(Entry))
    if table == NULL:
        raise MemoryError()
    try:
        with nogil:
            for slot in range(slots):
                table[slot].p = -1
                table[slot].nlines = 0
                table[slot].tainted = 0
            _pass_one(data, starts, ends, skip, status, lo, table, slots - 1, &n_prof, line_prof, counts, line_off, vals,
                      seen, &nvals, khi, klo, khash)
            for slot in range(slots):  # dense per-profile arrays for what follows
                if table[slot].p >= 0:
                    tainted[table[slot].p] = table[slot].tainted
                    nlines[table[slot].p] = table[slot].nlines
                    first_line[table[slot].p] = table[slot].first_line
    finally:
        free(table)
    # Which profiles are simple, and each one's lines together, in line order (a counting sort).
    line_simple_a = np.zeros(n, dtype=np.uint8)
    cdef uint8_t[::1] line_simple = line_simple_a
    prof_start_a = np.zeros(n_prof + 1, dtype=np.int64)
    cdef int64_t[::1] prof_start = prof_start_a
    order_a = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] order = order_a
    cdef Py_ssize_t n_order = 0
    with nogil:
        for p in range(n_prof):
            if tainted[p] or nlines[p] > cap:
                nlines[p] = 0  # not simple: none of its lines is placed
            prof_start[p + 1] = prof_start[p] + nlines[p]
        n_order = prof_start[n_prof]
        for i in range(n):
            p = line_prof[i]
            if p >= 0 and nlines[p] > 0:
                line_simple[i] = 1
                order[prof_start[p]] = i
                prof_start[p] += 1
    # Each simple profile's distinct valid trait IDs, from its lines' own lists, and its ID.
    out_first_a = np.empty(n_prof, dtype=np.int64)
    out_off_a = np.zeros(n_prof + 1, dtype=np.int64)
    out_vals_a = np.empty(max(1, nvals), dtype=np.int32)
    cdef int64_t[::1] out_first = out_first_a
    cdef int64_t[::1] out_off = out_off_a
    cdef int32_t[::1] out_vals = out_vals_a
    cdef Py_ssize_t n_out = 0, m = 0
    cdef int32_t cur = -1
    stamp = n + 1  # pass one used at most one stamp per line
    with nogil:
        for j in range(n_order):
            i = order[j]
            p = line_prof[i]
            if p != cur:
                if cur >= 0 and m > out_off[n_out]:
                    n_out += 1
                    out_off[n_out] = m
                cur = p
                out_first[n_out] = first_line[p]
                stamp += 1
            for k in range(line_off[i], line_off[i + 1]):
                idx = vals[k] - lo
                if seen[idx] != stamp:
                    seen[idx] = stamp
                    out_vals[m] = vals[k]
                    m += 1
        if cur >= 0 and m > out_off[n_out]:
            n_out += 1
            out_off[n_out] = m
    ids_a = np.empty(n_out * UUID_DIGITS, dtype=np.uint8)
    cdef uint8_t[::1] ids = ids_a
    with nogil:
        for j in range(n_out):
            for k in range(UUID_DIGITS):
                ids[j * UUID_DIGITS + k] = data[starts[out_first[j]] + k]
    return {
        "simple": line_simple_a.view(bool), "items": counts_a[0], "used": counts_a[1], "failed": counts_a[2], "realized": counts_a[3],
        "ids": ids_a, "offsets": out_off_a[:n_out + 1], "sids": out_vals_a[:m],
    }
