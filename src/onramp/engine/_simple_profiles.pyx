# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The native pass of ADR 0007: one chunk's simple profiles, merged in native memory.

A *simple line* is ASCII and reads ``<38-digit platform UUID> TAB <item>[, spaces* <item>]*``
after its trailing spaces are trimmed, where an item is ``d_sid=<1-9 digits>`` or
``d_unsid=<1-9 digits>`` (SPEC §3.4-§3.6, ``data_plan.SIMPLE_LINE_RE``). A *simple
profile* has only simple lines in the chunk, no more than the per-user cap. Its `.sync`
result (§3.8.1) is computed here as the SQL plan computes it:

- without a removal in any of its lines, its final adds are the distinct valid trait IDs
  of all its lines (the plan's "direct" lines, ``data_plan._evaluate_simple_lines``);
- otherwise its valid operations are replayed in line and item order, per trait: the last
  one wins, a removal right after an add counts as removed, and a trait whose first
  operation is a removal is checked against the store at commit (``engine.apply``).

Each line's counters are its own. Any other line whose first field is a 38-digit ID marks
that ID's profile as not simple, so its lines, simple or not, all take the SQL plan. That
may send a profile to SQL that did not need it (a line the SQL plan would reject before it
counts), never the reverse.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

import numpy as np

cdef enum:
    TAB = 9
    SPACE = 32
    COMMA = 44
    MAX_DIGITS = 9  # D-24: trait IDs are INTEGER; nine digits always fit
    UUID_DIGITS = 38  # platform UUIDs (SPEC §1.8)
    HALF = 19  # 19 decimal digits always fit in 64 bits
    OP_ADD = 1
    OP_REMOVE = 2


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


cdef inline Py_ssize_t _item(const uint8_t[::1] data, Py_ssize_t q, Py_ssize_t e, int64_t* sid, bint* add) noexcept nogil:
    """Parse ``d_sid=<digits>`` or ``d_unsid=<digits>`` at ``q``; the position after it, or -1."""
    cdef Py_ssize_t k
    cdef int64_t v = 0
    if e - q < 7 or data[q] != 100 or data[q + 1] != 95:  # "d_"
        return -1
    if data[q + 2] == 115 and data[q + 3] == 105 and data[q + 4] == 100 and data[q + 5] == 61:  # "sid="
        add[0] = True
        q += 6
    elif e - q >= 9 and data[q + 2] == 117 and data[q + 3] == 110 and data[q + 4] == 115 and data[q + 5] == 105 \
            and data[q + 6] == 100 and data[q + 7] == 61:  # "unsid="
        add[0] = False
        q += 8
    else:
        return -1
    k = q
    while q < e and q - k <= MAX_DIGITS and 48 <= data[q] <= 57:
        v = v * 10 + (data[q] - 48)
        q += 1
    if q == k or q - k > MAX_DIGITS:
        return -1
    sid[0] = v
    return q


cdef inline Py_ssize_t _next_item(const uint8_t[::1] data, Py_ssize_t q, Py_ssize_t e) noexcept nogil:
    """After an item at ``q < e``: the start of the next one, or -1 when the list is malformed."""
    if data[q] != COMMA:
        return -1
    q += 1
    while q < e and data[q] == SPACE:
        q += 1
    return q


ctypedef struct Entry:  # one hash-table slot: a profile and its state, in one cache line
    uint64_t hi
    uint64_t lo
    int64_t first_line  # where its ID can be read
    int32_t p  # dense profile number, -1: empty slot
    int32_t nlines  # its simple lines
    int8_t tainted  # it has a line that is not simple
    int8_t removal  # one of its lines has a d_unsid item


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


cdef inline uint8_t _status(const uint8_t[::1] status, int64_t lo, int64_t sid) noexcept nogil:
    cdef int64_t idx = sid - lo
    return status[idx] if 0 <= idx < status.shape[0] else 0


cdef void _pass_one(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends, const uint8_t[::1] skip,
                    const uint8_t[::1] status, int64_t lo, Entry* table, uint64_t mask, int32_t* n_prof,
                    int32_t[::1] line_prof, int32_t[:, ::1] counts, int64_t[::1] line_off, int32_t[::1] vals,
                    int32_t[::1] seen, int32_t* n_vals, uint8_t[::1] has_key, uint64_t[::1] khi, uint64_t[::1] klo_a,
                    uint64_t[::1] khash) noexcept nogil:
    """Parse each line; number the profiles; taint those with a line that is not simple.
    A simple line's distinct valid added trait IDs go to ``vals[line_off[i]:line_off[i + 1]]``."""
    cdef Py_ssize_t n = starts.shape[0], i, s, e, q
    cdef int64_t v
    cdef int32_t nvals = 0, first, items, used, failed, removals, stamp = 0
    cdef uint64_t hi, klo
    cdef uint8_t st
    cdef bint ok, add, unsid
    cdef Entry* entry
    # The IDs first, so that each lookup's slot can be fetched from memory ahead of it.
    for i in range(n):
        has_key[i] = _uuid_key(data, starts[i], ends[i], &hi, &klo)
        if has_key[i]:
            khi[i] = hi
            klo_a[i] = klo
            khash[i] = _hash(hi, klo)
    for i in range(n):
        line_off[i] = nvals
        if i + 12 < n and has_key[i + 12]:
            __builtin_prefetch(&table[khash[i + 12] & mask])
        if not has_key[i]:
            continue  # no 38-digit ID before a TAB: not a line of a simple profile
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
        removals = 0
        unsid = False
        stamp += 1
        while ok:
            q = _item(data, q, e, &v, &add)
            if q < 0:
                ok = False
                break
            items += 1
            st = _status(status, lo, v)
            if not add:
                unsid = True
            if st == 1:
                used += 1
                if not add:
                    removals += 1
                elif seen[v - lo] != stamp:
                    seen[v - lo] = stamp
                    vals[nvals] = <int32_t>v
                    nvals += 1
            elif st == 2:
                failed += 1
            if q == e:
                break
            q = _next_item(data, q, e)
            if q < 0:
                ok = False
        if not ok:
            nvals = first
            entry.tainted = 1
            continue
        line_prof[i] = entry.p
        entry.nlines += 1
        if unsid:
            entry.removal = 1
        counts[0, i] = items
        counts[1, i] = used
        counts[2, i] = failed
        counts[3, i] = nvals - first
        counts[4, i] = removals
    line_off[n] = nvals
    n_vals[0] = nvals


def merge_simple_profiles(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends,
                          const uint8_t[::1] skip, const int64_t[::1] seq, const uint8_t[::1] status, int64_t lo, int32_t cap):
    """Merge the simple profiles of one chunk's lines ``data[starts[i]:ends[i]]``.

    ``skip``: lines that cannot be simple (too long, control characters); ``seq``: the
    lines' order in the file (a chunk's rows need not be in that order); ``status[sid - lo]``:
    1 valid, 2 failed validation, 0 unknown (the engine's ``trait_lut``).

    Returns a dict of numpy arrays: per line ``simple`` (the line belongs to a simple
    profile), ``items``, ``used``, ``failed``, ``realized`` (distinct valid added trait IDs)
    and ``removals`` (valid removals). Per simple profile without a removal that adds a
    trait: its ID (``ids``: 38 bytes each) and its distinct valid trait IDs as ``offsets`` /
    ``sids``. Per trait of a simple profile with a removal (``op_ids``, ``op_sids``): its
    final operation (``op_last``: 1 add, 2 remove), whether it had a removal (``op_removal``)
    and whether its first operation was one (``op_first_removal``). ``removed_after_add``:
    removals right after an add of the same trait; ``devices``: simple profiles with a
    stored line.
    """
    cdef Py_ssize_t n = starts.shape[0], i, j, k, q, e
    cdef int64_t idx, v
    cdef int32_t nvals = 0, n_prof = 0, stamp, p
    cdef bint add
    line_prof_a = np.full(n, -1, dtype=np.int32)
    counts_a = np.zeros((5, n), dtype=np.int32)  # items, used, failed, realized, removals
    line_off_a = np.zeros(n + 1, dtype=np.int64)
    vals_a = np.empty(max(1, data.shape[0] // 7 + 1), dtype=np.int32)  # an item takes >= 7 bytes
    seen_a = np.zeros(max(1, status.shape[0]), dtype=np.int32)
    cdef int32_t[::1] line_prof = line_prof_a
    cdef int32_t[:, ::1] counts = counts_a
    cdef int64_t[::1] line_off = line_off_a
    cdef int32_t[::1] vals = vals_a
    cdef int32_t[::1] seen = seen_a
    tainted_a = np.zeros(n + 1, dtype=np.uint8)
    removal_a = np.zeros(n + 1, dtype=np.uint8)
    nlines_a = np.zeros(n + 1, dtype=np.int32)
    first_a = np.zeros(n + 1, dtype=np.int64)
    cdef uint8_t[::1] tainted = tainted_a
    cdef uint8_t[::1] removal = removal_a
    cdef int32_t[::1] nlines = nlines_a
    cdef int64_t[::1] first_line = first_a
    has_key_a = np.zeros(n, dtype=np.uint8)
    khi_a = np.empty(n, dtype=np.uint64)
    klo_a = np.empty(n, dtype=np.uint64)
    khash_a = np.empty(n, dtype=np.uint64)
    cdef uint8_t[::1] has_key = has_key_a
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
                table[slot].removal = 0
            _pass_one(data, starts, ends, skip, status, lo, table, slots - 1, &n_prof, line_prof, counts, line_off, vals,
                      seen, &nvals, has_key, khi, klo, khash)
            for slot in range(slots):  # dense per-profile arrays for what follows
                if table[slot].p >= 0:
                    tainted[table[slot].p] = table[slot].tainted
                    removal[table[slot].p] = table[slot].removal
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
        # A profile with a removal replays its lines in file order: sort its few lines.
        for p in range(n_prof):
            if removal[p] and nlines[p] > 1:
                _sort_by(order, prof_start[p] - nlines[p], prof_start[p], seq)
    # Per simple profile, in line order: without a removal, the distinct valid added trait
    # IDs of its lines; with one, its valid operations replayed per trait.
    out_first_a = np.empty(n_prof, dtype=np.int64)
    out_off_a = np.zeros(n_prof + 1, dtype=np.int64)
    out_vals_a = np.empty(max(1, nvals), dtype=np.int32)
    cdef int64_t[::1] out_first = out_first_a
    cdef int64_t[::1] out_off = out_off_a
    cdef int32_t[::1] out_vals = out_vals_a
    op_line_a = np.empty(max(1, data.shape[0] // 7 + 1), dtype=np.int64)  # per trait of a removal profile
    op_sid_a = np.empty_like(op_line_a, dtype=np.int32)
    op_flags_a = np.zeros((3, op_line_a.shape[0]), dtype=np.uint8)  # last op, had a removal, first op was one
    cdef int64_t[::1] op_line = op_line_a
    cdef int32_t[::1] op_sid = op_sid_a
    cdef uint8_t[:, ::1] op_flags = op_flags_a
    kpos_a = np.zeros(max(1, status.shape[0]), dtype=np.int64)  # trait -> its row in op_* for this profile
    cdef int64_t[::1] kpos = kpos_a
    cdef Py_ssize_t n_out = 0, m = 0, n_ops = 0, r
    cdef int64_t removed_after_add = 0, devices = 0
    cdef int32_t cur = -1
    cdef bint stored
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
                stored = False
            if not stored and counts[3, i] + counts[4, i] > 0:
                stored = True
                devices += 1
            if not removal[p]:
                for k in range(line_off[i], line_off[i + 1]):
                    idx = vals[k] - lo
                    if seen[idx] != stamp:
                        seen[idx] = stamp
                        out_vals[m] = vals[k]
                        m += 1
                continue
            # Replay the line's valid operations (its bytes were checked in pass one).
            e = ends[i]
            while e > starts[i] and data[e - 1] == SPACE:
                e -= 1
            q = starts[i] + UUID_DIGITS + 1
            while True:
                q = _item(data, q, e, &v, &add)
                if _status(status, lo, v) == 1:
                    idx = v - lo
                    if seen[idx] != stamp:  # the trait's first operation in this profile
                        seen[idx] = stamp
                        r = n_ops
                        n_ops += 1
                        kpos[idx] = r
                        op_line[r] = i
                        op_sid[r] = <int32_t>v
                        op_flags[1, r] = 0
                        op_flags[2, r] = 0 if add else 1
                    else:
                        r = kpos[idx]
                        if not add and op_flags[0, r] == OP_ADD:
                            removed_after_add += 1
                    op_flags[0, r] = OP_ADD if add else OP_REMOVE
                    if not add:
                        op_flags[1, r] = 1
                if q == e:
                    break
                q = _next_item(data, q, e)
        if cur >= 0 and m > out_off[n_out]:
            n_out += 1
            out_off[n_out] = m
    ids_a = _id_bytes(data, starts, out_first_a[:n_out])
    op_ids_a = _id_bytes(data, starts, op_line_a[:n_ops])
    return {
        "simple": line_simple_a.view(bool), "items": counts_a[0], "used": counts_a[1], "failed": counts_a[2],
        "realized": counts_a[3], "removals": counts_a[4],
        "ids": ids_a, "offsets": out_off_a[:n_out + 1], "sids": out_vals_a[:m],
        "op_ids": op_ids_a, "op_sids": op_sid_a[:n_ops], "op_last": op_flags_a[0, :n_ops].copy(),
        "op_removal": op_flags_a[1, :n_ops].astype(bool), "op_first_removal": op_flags_a[2, :n_ops].astype(bool),
        "removed_after_add": int(removed_after_add), "devices": int(devices),
    }


cdef void _sort_by(int64_t[::1] order, Py_ssize_t begin, Py_ssize_t end, const int64_t[::1] key) noexcept nogil:
    """Insertion sort of ``order[begin:end]`` by ``key`` (a profile has at most cap lines)."""
    cdef Py_ssize_t a, b
    cdef int64_t x
    for a in range(begin + 1, end):
        x = order[a]
        b = a - 1
        while b >= begin and key[order[b]] > key[x]:
            order[b + 1] = order[b]
            b -= 1
        order[b + 1] = x


def _id_bytes(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] lines):
    """The 38-byte IDs that ``lines`` start with, end to end."""
    out_a = np.empty(lines.shape[0] * UUID_DIGITS, dtype=np.uint8)
    cdef uint8_t[::1] out = out_a
    cdef Py_ssize_t j, k
    with nogil:
        for j in range(lines.shape[0]):
            for k in range(UUID_DIGITS):
                out[j * UUID_DIGITS + k] = data[starts[lines[j]] + k]
    return out_a
