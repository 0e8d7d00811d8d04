# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The native pass of ADR 0008: one chunk's simple key-value profiles, merged in native memory.

A *simple key-value line* (``engine/kv_profiles.py`` says who may use this pass) is ASCII,
reads ``<user ID> TAB <item>[,<item>]*`` after its trailing spaces are trimmed, has a user ID
that passes its namespace's check without doubt, and only items of these forms (SPEC §3.4):

- empty (spaces only);
- ``<digits>``: the signal ``ic=<digits>``;
- ``<key> = <value>``, each side quoted (``"..."``, taken verbatim) or not (trimmed, no
  ``,`` ``=`` ``"``), the key lower-cased with its leading dashes dropped, neither side empty;
- ``d_sid = <1-9 digits>`` (after the same key rules): a trait ID to add.

Its signals are evaluated against the data source's rules exactly as the SQL plan does:
equality atoms (``rules/equality.py``) are looked up by (key, token); the other rules run a
small postfix program over their comparisons (``==``, ``!=``, ``<``, ``>``, ``<=``, ``>=``,
``contains``, ``startswith``, ``endswith``, §4.4). A line carrying a key that some
``matcheswords``/``matchesregex`` comparison reads is not simple.

A *simple profile* has only simple lines in the chunk, no more than the per-user cap; its
`.sync` result is the distinct union of its lines' realized traits (no removal occurs).
Any other line whose first field is that user ID marks the profile as not simple, and all
its lines take the SQL plan.
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy

import numpy as np

cdef enum:
    TAB = 9
    SPACE = 32
    QUOTE = 34
    COMMA = 44
    DASH = 45
    DOT = 46
    EQUALS = 61
    MAX_SID_DIGITS = 9
    # id kinds
    KIND_PLATFORM_UUID = 0
    KIND_CUSTOMER_ID = 1
    UUID_DIGITS = 38
    DPUUID_MAX_BYTES = 1024
    # comparison operators of the postfix programs (kv_profiles.OPS)
    OP_EQ = 0
    OP_NE = 1
    OP_LT = 2
    OP_GT = 3
    OP_LE = 4
    OP_GE = 5
    OP_CONTAINS = 6
    OP_STARTSWITH = 7
    OP_ENDSWITH = 8
    OP_UNSUPPORTED = 9
    # program codes below zero
    P_AND = -1
    P_OR = -2
    P_NOT = -3
    SORT_KEY_WIDTH = 10  # rules/values.SORT_KEY_LENGTH_DIGITS


cdef extern from *:
    void __builtin_prefetch(const void* address) nogil


cdef inline uint64_t _hash(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = <uint64_t>0x243F6A8885A308D3 ^ (<uint64_t>n * <uint64_t>0x9E3779B97F4A7C15)
    cdef uint64_t w
    cdef Py_ssize_t k = 0
    while k + 8 <= n:
        memcpy(&w, p + k, 8)
        h = (h ^ w) * <uint64_t>0xBF58476D1CE4E5B9
        h ^= h >> 31
        k += 8
    w = 0
    if k < n:
        memcpy(&w, p + k, n - k)
        h = (h ^ w) * <uint64_t>0x94D049BB133111EB
    h ^= h >> 29
    h *= <uint64_t>0xC2B2AE3D27D4EB4F
    return h ^ (h >> 32)


ctypedef struct Slot:  # one slot of a hash table from byte strings to numbers
    uint64_t h
    int32_t id  # -1: empty
    int32_t length


cdef class _BytesTable:
    """Open addressing from byte strings (laid end to end in ``blob``) to their index."""
    cdef Slot* slots
    cdef uint64_t mask
    cdef const uint8_t[::1] blob
    cdef const int64_t[::1] off

    def __cinit__(self, const uint8_t[::1] blob, const int64_t[::1] off):
        cdef Py_ssize_t n = off.shape[0] - 1, j
        cdef uint64_t size = 16, i, h
        while size < 2 * <uint64_t>n + 2:
            size *= 2
        self.blob = blob
        self.off = off
        self.mask = size - 1
        self.slots = <Slot*>malloc(size * sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        for i in range(size):
            self.slots[i].id = -1
        for j in range(n):
            h = _hash(&blob[0] + off[j], off[j + 1] - off[j])
            i = h & self.mask
            while self.slots[i].id != -1:
                i = (i + 1) & self.mask
            self.slots[i].h = h
            self.slots[i].id = <int32_t>j
            self.slots[i].length = <int32_t>(off[j + 1] - off[j])

    def __dealloc__(self):
        free(self.slots)

    cdef inline int32_t find(self, const uint8_t* p, Py_ssize_t n) noexcept nogil:
        return self.find_hashed(p, n, _hash(p, n))

    cdef inline int32_t find_hashed(self, const uint8_t* p, Py_ssize_t n, uint64_t h) noexcept nogil:
        cdef uint64_t i = h & self.mask
        cdef Slot* slot = &self.slots[i]
        while slot.id != -1:
            if slot.h == h and slot.length == n and memcmp(&self.blob[0] + self.off[slot.id], p, n) == 0:
                return slot.id
            i = (i + 1) & self.mask
            slot = &self.slots[i]
        return -1


cdef inline bint _is_number(const uint8_t* v, Py_ssize_t n) noexcept nogil:
    """rules/values.is_number: ``-?[0-9]+(\\.[0-9]+)?``."""
    cdef Py_ssize_t k = 0, d
    if k < n and v[k] == DASH:
        k += 1
    d = k
    while k < n and 48 <= v[k] <= 57:
        k += 1
    if k == d:
        return False
    if k == n:
        return True
    if v[k] != DOT:
        return False
    k += 1
    d = k
    while k < n and 48 <= v[k] <= 57:
        k += 1
    return k > d and k == n


cdef inline Py_ssize_t _canonical(const uint8_t* v, Py_ssize_t n, uint8_t* out) noexcept nogil:
    """rules/values.canonical_decimal of a number into ``out``; its length."""
    cdef bint negative = n > 0 and v[0] == DASH
    cdef Py_ssize_t a = 1 if negative else 0, dot = a, e, w0, m = 0, k
    while dot < n and v[dot] != DOT:
        dot += 1
    w0 = a
    while w0 < dot - 1 and v[w0] == 48:
        w0 += 1
    e = n
    if dot < n:
        while e > dot + 1 and v[e - 1] == 48:
            e -= 1
        if e == dot + 1:
            e = dot  # no fraction left
    if dot - w0 == 1 and v[w0] == 48 and e == dot:
        out[0] = 48
        return 1
    if negative:
        out[m] = DASH
        m += 1
    for k in range(w0, e):
        out[m] = v[k]
        m += 1
    return m


cdef inline Py_ssize_t _sort_key(const uint8_t* v, Py_ssize_t n, uint8_t* tmp, uint8_t* out) noexcept nogil:
    """rules/values.number_sort_key of a number into ``out`` (``tmp``: scratch); its length."""
    cdef Py_ssize_t c = _canonical(v, n, tmp), a, dot, m = 0, k, whole
    cdef bint negative
    cdef uint8_t d
    if c == 1 and tmp[0] == 48:
        out[0] = 49
        return 1
    negative = tmp[0] == DASH
    a = 1 if negative else 0
    dot = a
    while dot < c and tmp[dot] != DOT:
        dot += 1
    whole = dot - a
    out[0] = 48 if negative else 50
    m = 1 + SORT_KEY_WIDTH
    k = SORT_KEY_WIDTH
    while k > 0:
        out[k] = 48 + whole % 10
        whole //= 10
        k -= 1
    for k in range(a, c):
        if tmp[k] != DOT:
            out[m] = tmp[k]
            m += 1
    if negative:
        for k in range(1, m):
            out[k] = 48 + 57 - out[k]
        out[m] = 58  # ':'
        m += 1
    return m


cdef inline int _lexcmp(const uint8_t* a, Py_ssize_t na, const uint8_t* b, Py_ssize_t nb) noexcept nogil:
    cdef Py_ssize_t n = na if na < nb else nb
    cdef int c = memcmp(a, b, n) if n > 0 else 0
    if c != 0:
        return c
    return -1 if na < nb else (1 if na > nb else 0)


cdef inline bint _find(const uint8_t* hay, Py_ssize_t nh, const uint8_t* needle, Py_ssize_t nn) noexcept nogil:
    cdef Py_ssize_t k
    if nn == 0:
        return True
    for k in range(nh - nn + 1):
        if hay[k] == needle[0] and memcmp(hay + k, needle, nn) == 0:
            return True
    return False


cdef inline Py_ssize_t _token(const uint8_t* d, Py_ssize_t q, Py_ssize_t e, Py_ssize_t* a, Py_ssize_t* b, bint* quoted) noexcept nogil:
    """A key or value at ``q`` (spaces skipped): quoted (verbatim) or not (trailing spaces
    trimmed, stops at ``,`` ``=`` ``"``). Its span in ``a``/``b``; the position after it, -1 if
    a quote is not closed."""
    while q < e and d[q] == SPACE:
        q += 1
    if q < e and d[q] == QUOTE:
        a[0] = q + 1
        q += 1
        while q < e and d[q] != QUOTE:
            q += 1
        if q == e:
            return -1
        b[0] = q
        quoted[0] = True
        return q + 1
    a[0] = q
    while q < e and d[q] != COMMA and d[q] != EQUALS and d[q] != QUOTE:
        q += 1
    b[0] = q
    while b[0] > a[0] and d[b[0] - 1] == SPACE:
        b[0] -= 1
    quoted[0] = False
    return q


cdef class KvRules:
    """A data source's rules, compiled once per job by ``kv_profiles.compile_rules``."""
    cdef _BytesTable keys, tokens
    cdef const uint8_t[::1] key_flags  # bit 1: some equality atom reads it; 2: some program; 4: unsupported
    cdef const int64_t[::1] tok_start  # token group -> its atoms in a_*
    cdef const int32_t[::1] a_sid, a_term, a_atom, a_natoms
    cdef const int64_t[::1] kc_start  # key -> its comparisons (c_*)
    cdef const int32_t[::1] c_atom
    cdef const uint8_t[::1] c_op, c_lit
    cdef const int64_t[::1] c_lit_off
    cdef const int64_t[::1] kr_start  # key -> the programs that read it
    cdef const int32_t[::1] kr_rule
    cdef const int64_t[::1] prog_start  # program -> its codes
    cdef const int32_t[::1] prog, prog_sid
    cdef const int64_t[::1] rk_start  # sid - lo -> the keys of its rule (used signals, §4.6)
    cdef const int32_t[::1] rk_key
    cdef const int32_t[::1] atom_key  # comparison -> its key
    cdef const uint8_t[::1] atom_neg  # comparison -> it is `!=`
    cdef const uint8_t[::1] status
    cdef int32_t ic_key
    cdef int64_t lo
    cdef int32_t n_keys, n_atoms, n_progs, max_prog

    def __init__(self, keys_blob, keys_off, key_flags, tok_blob, tok_off, tok_start, a_sid, a_term, a_atom, a_natoms,
                 kc_start, c_atom, c_op, c_lit, c_lit_off, kr_start, kr_rule, prog_start, prog, prog_sid,
                 rk_start, rk_key, atom_key, atom_neg, status, lo):
        self.keys = _BytesTable(keys_blob, keys_off)
        self.tokens = _BytesTable(tok_blob, tok_off)
        self.key_flags, self.tok_start = key_flags, tok_start
        self.a_sid, self.a_term, self.a_atom, self.a_natoms = a_sid, a_term, a_atom, a_natoms
        self.kc_start, self.c_atom, self.c_op, self.c_lit, self.c_lit_off = kc_start, c_atom, c_op, c_lit, c_lit_off
        self.kr_start, self.kr_rule = kr_start, kr_rule
        self.prog_start, self.prog, self.prog_sid = prog_start, prog, prog_sid
        self.rk_start, self.rk_key = rk_start, rk_key
        self.atom_key, self.atom_neg = atom_key, atom_neg
        self.status, self.lo = status, lo
        self.n_keys = len(keys_off) - 1
        self.n_atoms = len(atom_key)
        self.ic_key = self.keys.find(<const uint8_t*>"ic", 2)
        self.n_progs = len(prog_start) - 1
        self.max_prog = int(np.diff(prog_start).max()) if self.n_progs else 0

    def merge(self, const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends, const uint8_t[::1] skip,
              int kind, int32_t cap, bint count_devices):
        """Merge the simple profiles of one chunk's lines ``data[starts[i]:ends[i]]``
        (``skip``: lines that cannot be simple: too long, control characters).

        Returns a dict of numpy arrays: per line ``simple`` (it belongs to a simple profile),
        ``items``, ``used``, ``failed``, ``realized``; per simple profile that realizes a trait,
        its user ID (``ids`` bytes, ``id_offsets``) and its distinct traits (``offsets``,
        ``sids``); ``devices``: simple profiles with a stored line when ``count_devices``.
        """
        return _merge(self, data, starts, ends, skip, kind, cap, count_devices)


cdef struct Scratch:  # per-call buffers, grown as needed
    int32_t* vals  # realized trait IDs of all lines, end to end
    Py_ssize_t n_vals, cap_vals
    int64_t* multi  # the current line's matched atoms of multi-atom terms (_terms)
    Py_ssize_t n_multi, cap_multi


cdef inline bint _push_val(Scratch* s, int32_t v) noexcept nogil:
    cdef int32_t* grown
    if s.n_vals == s.cap_vals:
        grown = <int32_t*>realloc(s.vals, 2 * s.cap_vals * sizeof(int32_t))
        if grown == NULL:
            return False
        s.vals = grown
        s.cap_vals *= 2
    s.vals[s.n_vals] = v
    s.n_vals += 1
    return True


cdef inline bint _push_multi(Scratch* s, int64_t v) noexcept nogil:
    cdef int64_t* grown
    if s.n_multi == s.cap_multi:
        grown = <int64_t*>realloc(s.multi, 2 * s.cap_multi * sizeof(int64_t))
        if grown == NULL:
            return False
        s.multi = grown
        s.cap_multi *= 2
    s.multi[s.n_multi] = v
    s.n_multi += 1
    return True


cdef inline bint _uid_ok(const uint8_t* u, Py_ssize_t n, int kind) noexcept nogil:
    """The user ID passes §3.5 without doubt (else the SQL plan decides)."""
    cdef Py_ssize_t k
    cdef uint8_t c
    if n == 0:
        return False
    if kind == KIND_PLATFORM_UUID:
        if n != UUID_DIGITS:
            return False
        for k in range(n):
            if u[k] < 48 or u[k] > 57:
                return False
        return True
    if n > DPUUID_MAX_BYTES:
        return False
    for k in range(n):
        c = u[k]
        if c == 58 or c == 64 or c >= 128:  # ':' (D-05), '@' (maybe an email, D-08): the plan decides
            return False
        if c == 37 and k + 2 < n and u[k + 1] == 51 and (u[k + 2] | 32) == 97:  # "%3a"
            return False
    return True


cdef object _merge(KvRules r, const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends,
                   const uint8_t[::1] skip, int kind, int32_t cap, bint count_devices):
    cdef Py_ssize_t n = starts.shape[0], i, j, k, longest = 1
    for i in range(n):
        if ends[i] - starts[i] > longest:
            longest = ends[i] - starts[i]
    span = max(1, r.status.shape[0])
    counts_a = np.zeros((4, n), dtype=np.int32)  # items, used, failed, realized
    line_prof_a = np.full(n, -1, dtype=np.int32)
    line_off_a = np.zeros(n + 1, dtype=np.int64)
    sig_key_a = np.empty(longest + 1, dtype=np.int32)  # the current line's signals
    sig_a_a = np.empty(longest + 1, dtype=np.int64)
    sig_b_a = np.empty(longest + 1, dtype=np.int64)
    sig_off_a = np.empty(longest + 1, dtype=np.int64)
    sig_h_a = np.empty(longest + 1, dtype=np.uint64)
    buf_a = np.empty(8 * longest + 64, dtype=np.uint8)  # a token per signal: 6 bytes + its value
    tmp_a = np.empty(4 * longest + 128, dtype=np.uint8)
    seen_a = np.zeros(span, dtype=np.int32)  # stamp per trait
    key_seen_a = np.zeros(max(1, r.n_keys), dtype=np.int32)  # stamp per key: present / used
    key_used_a = np.zeros(max(1, r.n_keys), dtype=np.int32)
    atom_hit_a = np.zeros(max(1, r.n_atoms), dtype=np.int32)  # stamp: some value passes
    prog_seen_a = np.zeros(max(1, r.n_progs), dtype=np.int32)
    progs_a = np.empty(max(1, r.n_progs), dtype=np.int32)
    stack_a = np.empty(max(1, r.max_prog), dtype=np.uint8)
    cdef int32_t[:, ::1] counts = counts_a
    cdef int32_t[::1] line_prof = line_prof_a
    cdef int64_t[::1] line_off = line_off_a
    cdef int32_t[::1] sig_key = sig_key_a
    cdef int64_t[::1] sig_a = sig_a_a
    cdef int64_t[::1] sig_b = sig_b_a
    cdef int64_t[::1] sig_off = sig_off_a
    cdef uint64_t[::1] sig_h = sig_h_a
    cdef uint8_t[::1] buf = buf_a
    cdef uint8_t[::1] tmp = tmp_a
    cdef int32_t[::1] seen = seen_a
    cdef int32_t[::1] key_seen = key_seen_a
    cdef int32_t[::1] key_used = key_used_a
    cdef int32_t[::1] atom_hit = atom_hit_a
    cdef int32_t[::1] prog_seen = prog_seen_a
    cdef int32_t[::1] progs = progs_a
    cdef uint8_t[::1] stack = stack_a
    cdef uint64_t slots = 16, slot
    while slots < 2 * <uint64_t>n + 2:
        slots *= 2
    # Per profile (numbered in order of appearance): its first line, ID length, lines, taint.
    first_a = np.zeros(n + 1, dtype=np.int64)
    length_a = np.zeros(n + 1, dtype=np.int64)
    nlines_a = np.zeros(n + 1, dtype=np.int32)
    tainted_a = np.zeros(n + 1, dtype=np.uint8)
    tabs_a = np.empty(n + 1, dtype=np.int64)
    hashes_a = np.empty(n + 1, dtype=np.uint64)
    cdef int64_t[::1] first = first_a
    cdef int64_t[::1] lengths = length_a
    cdef int32_t[::1] nlines = nlines_a
    cdef uint8_t[::1] tainted = tainted_a
    cdef int64_t[::1] tabs = tabs_a
    cdef uint64_t[::1] hashes = hashes_a
    cdef Slot* table = <Slot*>malloc(slots * sizeof(Slot))
    cdef Scratch s
    s.cap_vals = 1024
    s.n_vals = 0
    s.vals = <int32_t*>malloc(s.cap_vals * sizeof(int32_t))
    s.cap_multi = 256
    s.n_multi = 0
    s.multi = <int64_t*>malloc(s.cap_multi * sizeof(int64_t))
    cdef int32_t n_prof = 0
    cdef bint ok = True
    if table == NULL or s.vals == NULL or s.multi == NULL:
        free(table)
        free(s.vals)
        free(s.multi)
        raise MemoryError()
    try:
        with nogil:
            for slot in range(slots):
                table[slot].id = -1
            ok = _pass_one(r, data, starts, ends, skip, kind, table, slots - 1, &n_prof, counts, line_prof, line_off,
                           first, lengths, nlines, tainted, tabs, hashes,
                           sig_key, sig_a, sig_b, sig_off, sig_h, buf, tmp, seen, key_seen, key_used, atom_hit, prog_seen, progs, stack, &s)
        if not ok:
            raise MemoryError()
        vals_a = np.empty(max(1, s.n_vals), dtype=np.int32)
        _copy_vals(vals_a, &s)
    finally:
        free(table)
        free(s.vals)
        free(s.multi)
    return _profiles(data, starts, counts_a, line_prof_a, line_off_a, tainted_a, nlines_a, first_a, length_a, vals_a,
                     n_prof, cap, count_devices)


cdef void _copy_vals(int32_t[::1] vals, Scratch* s) noexcept:
    cdef Py_ssize_t k
    for k in range(s.n_vals):
        vals[k] = s.vals[k]


cdef inline int32_t _profile(Slot* table, uint64_t mask, uint64_t h, const uint8_t* d, const int64_t[::1] starts,
                             Py_ssize_t line, Py_ssize_t length, int64_t[::1] first, int64_t[::1] lengths,
                             int32_t* size) noexcept nogil:
    """The number of the profile whose user ID is ``length`` bytes at line ``line``'s start."""
    cdef uint64_t i = h & mask
    cdef Slot* slot = &table[i]
    while slot.id != -1:
        if slot.h == h and slot.length == length and memcmp(d + starts[first[slot.id]], d + starts[line], length) == 0:
            return slot.id
        i = (i + 1) & mask
        slot = &table[i]
    slot.h = h
    slot.id = size[0]
    slot.length = <int32_t>length
    first[size[0]] = line
    lengths[size[0]] = length
    size[0] += 1
    return slot.id


cdef bint _pass_one(KvRules r, const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends,
                    const uint8_t[::1] skip, int kind, Slot* table, uint64_t mask, int32_t* n_prof,
                    int32_t[:, ::1] counts, int32_t[::1] line_prof, int64_t[::1] line_off,
                    int64_t[::1] first_line, int64_t[::1] lengths, int32_t[::1] nlines, uint8_t[::1] tainted,
                    int64_t[::1] tabs, uint64_t[::1] hashes,
                    int32_t[::1] sig_key, int64_t[::1] sig_a, int64_t[::1] sig_b, int64_t[::1] sig_off, uint64_t[::1] sig_h,
                    uint8_t[::1] buf, uint8_t[::1] tmp,
                    int32_t[::1] seen, int32_t[::1] key_seen, int32_t[::1] key_used, int32_t[::1] atom_hit,
                    int32_t[::1] prog_seen, int32_t[::1] progs, uint8_t[::1] stack, Scratch* s) noexcept nogil:
    """Parse and evaluate each line; number the profiles; taint those with a line that is not simple."""
    cdef const uint8_t* d = &data[0]
    cdef Py_ssize_t n = starts.shape[0], i, st, e, t, q, ka, kb, va, vb, k, n_sig, first, x
    cdef int32_t stamp = 0, key, sid, items, failed, used, n_progs
    cdef int64_t g, c
    cdef bint ok, quoted, kq, vq, bare
    cdef uint8_t flags, code
    cdef int32_t p
    # The user IDs first, so that each lookup's slot can be fetched from memory ahead of it.
    for i in range(n):
        t = starts[i]
        while t < ends[i] and d[t] != TAB:
            t += 1
        tabs[i] = t if t < ends[i] else -1
        hashes[i] = _hash(d + starts[i], t - starts[i])
    for i in range(n):
        line_off[i] = s.n_vals
        if i + 16 < n:
            __builtin_prefetch(&table[hashes[i + 16] & mask])
        st = starts[i]
        e = ends[i]
        t = tabs[i]
        if t < 0:
            continue  # no TAB: a Format Error of no profile
        p = _profile(table, mask, hashes[i], d, starts, i, t - st, first_line, lengths, n_prof)
        if skip[i] or tainted[p] or not _uid_ok(d + st, t - st, kind):
            tainted[p] = 1
            continue
        while e > t + 1 and d[e - 1] == SPACE:  # D-25
            e -= 1
        ok = e > t + 1
        for k in range(t + 1, e):
            if d[k] >= 128 or d[k] == TAB:
                ok = False
                break
        stamp += 1
        first = s.n_vals
        n_sig = 0
        items = 0
        failed = 0
        used = 0
        q = t + 1
        while ok:
            # One item: empty, bare digits, or key = value.
            while q < e and d[q] == SPACE:
                q += 1
            if q == e:
                break
            if d[q] == COMMA:  # D-26: an empty item
                q += 1
                continue
            q = _token(d, q, e, &ka, &kb, &kq)
            if q < 0:
                ok = False
                break
            while q < e and d[q] == SPACE:
                q += 1
            bare = q == e or d[q] == COMMA
            if bare:
                if kq or kb == ka:
                    ok = False
                    break
                for k in range(ka, kb):
                    if d[k] < 48 or d[k] > 57:
                        ok = False
                        break
                if not ok:
                    break
                va, vb = ka, kb
                key = r.ic_key
            else:
                if d[q] != EQUALS:
                    ok = False
                    break
                q = _token(d, q + 1, e, &va, &vb, &vq)
                if q < 0 or vb == va:
                    ok = False
                    break
                while q < e and d[q] == SPACE:
                    q += 1
                if q < e and d[q] != COMMA:
                    ok = False
                    break
                while ka < kb and d[ka] == DASH:
                    ka += 1
                if kb == ka:
                    ok = False
                    break
                for k in range(ka, kb):  # D-24: keys are matched in lower case
                    buf[k - ka] = d[k] + 32 if 65 <= d[k] <= 90 else d[k]
                if kb - ka == 7 and memcmp(&buf[0], <const uint8_t*>"d_unsid", 7) == 0:
                    ok = False
                    break
                if kb - ka == 5 and memcmp(&buf[0], <const uint8_t*>"d_sid", 5) == 0:
                    if vb - va > MAX_SID_DIGITS:
                        ok = False
                        break
                    sid = 0
                    for k in range(va, vb):
                        if d[k] < 48 or d[k] > 57:
                            ok = False
                            break
                        sid = sid * 10 + (d[k] - 48)
                    if not ok:
                        break
                    items += 1
                    code = r.status[sid - r.lo] if 0 <= sid - r.lo < r.status.shape[0] else 0
                    if code == 1:
                        used += 1
                        if seen[sid - r.lo] != stamp:
                            seen[sid - r.lo] = stamp
                            if not _push_val(s, sid):
                                return False
                    elif code == 2:
                        failed += 1
                    if q < e:
                        q += 1
                    continue
                key = r.keys.find(&buf[0], kb - ka)
            items += 1
            if key >= 0:
                if r.key_flags[key] & 4:
                    ok = False
                    break
                sig_key[n_sig] = key
                sig_a[n_sig] = va
                sig_b[n_sig] = vb
                n_sig += 1
            if q < e:
                q += 1  # the comma
        if ok and items == 0:
            ok = False  # D-26: no item left
        if not ok:
            s.n_vals = first
            tainted[p] = 1
            continue
        # Rules: equality atoms by lookup, programs over their comparisons.
        s.n_multi = 0
        n_progs = 0
        # Each signal's equality token (key, "s:", value in lower case) gets its own place in
        # ``buf`` and its slot is fetched from memory ahead of the lookups.
        g = 0
        for x in range(n_sig):
            key = sig_key[x]
            va = sig_a[x]
            vb = sig_b[x]
            sig_off[x] = g
            if r.key_flags[key] & 3:
                memcpy(&buf[g], &key, 4)
                buf[g + 4] = 115  # 's'
                buf[g + 5] = 58  # ':'
                for k in range(vb - va):
                    buf[g + 6 + k] = d[va + k] + 32 if 65 <= d[va + k] <= 90 else d[va + k]
                if r.key_flags[key] & 1:
                    sig_h[x] = _hash(&buf[g], 6 + vb - va)
                    __builtin_prefetch(&r.tokens.slots[sig_h[x] & r.tokens.mask])
                g += 6 + vb - va
        for x in range(n_sig):
            key = sig_key[x]
            va = sig_a[x]
            vb = sig_b[x]
            flags = r.key_flags[key]
            key_seen[key] = stamp
            if flags & 1:
                if not _atoms(r, s, r.tokens.find_hashed(&buf[sig_off[x]], 6 + vb - va, sig_h[x]), seen, stamp):
                    return False
                if _is_number(d + va, vb - va):
                    c = _canonical(d + va, vb - va, &tmp[6])
                    memcpy(&tmp[0], &key, 4)
                    tmp[4] = 110  # 'n'
                    tmp[5] = 58
                    if not _atoms(r, s, r.tokens.find(&tmp[0], 6 + c), seen, stamp):
                        return False
            if flags & 2:
                _compare(r, d + va, vb - va, &buf[sig_off[x] + 6], key, &tmp[0], atom_hit, stamp)
                for g in range(r.kr_start[key], r.kr_start[key + 1]):
                    if prog_seen[r.kr_rule[g]] != stamp:
                        prog_seen[r.kr_rule[g]] = stamp
                        progs[n_progs] = r.kr_rule[g]
                        n_progs += 1
        if s.n_multi and not _terms(r, s, seen, stamp):
            return False
        for x in range(n_progs):
            if _run(r, progs[x], key_seen, atom_hit, stamp, &stack[0]):
                sid = r.prog_sid[progs[x]]
                if seen[sid - r.lo] != stamp:
                    seen[sid - r.lo] = stamp
                    if not _push_val(s, sid):
                        return False
        # §4.6: a signal is used when its key occurs in the rule of a trait realized here.
        if n_sig and s.n_vals > first:
            for k in range(first, s.n_vals):
                for g in range(r.rk_start[s.vals[k] - r.lo], r.rk_start[s.vals[k] - r.lo + 1]):
                    key_used[r.rk_key[g]] = stamp
            for x in range(n_sig):
                if key_used[sig_key[x]] == stamp:
                    used += 1
        line_prof[i] = p
        nlines[p] += 1
        counts[0, i] = items
        counts[1, i] = used
        counts[2, i] = failed
        counts[3, i] = <int32_t>(s.n_vals - first)
    line_off[n] = s.n_vals
    return True


cdef inline bint _atoms(KvRules r, Scratch* s, int32_t group, int32_t[::1] seen, int32_t stamp) noexcept nogil:
    """The equality atoms a token matched: a term of one atom holds; others are counted later."""
    cdef int64_t g
    cdef int32_t sid
    if group < 0:
        return True
    for g in range(r.tok_start[group], r.tok_start[group + 1]):
        sid = r.a_sid[g]
        if r.a_natoms[g] == 1:
            if seen[sid - r.lo] != stamp:
                seen[sid - r.lo] = stamp
                if not _push_val(s, sid):
                    return False
        elif not _push_multi(s, ((<int64_t>(sid - r.lo)) << 42) | ((<int64_t>r.a_term[g]) << 28)
                             | ((<int64_t>r.a_natoms[g]) << 14) | r.a_atom[g]):
            return False
    return True


cdef bint _terms(KvRules r, Scratch* s, int32_t[::1] seen, int32_t stamp) noexcept nogil:
    """Terms of several atoms hold when all their distinct atoms matched on the line.
    Matches are packed as (sid - lo) << 42 | term << 28 | n_atoms << 14 | atom."""
    cdef Py_ssize_t a, b, k
    cdef int64_t x, term
    cdef int32_t distinct, sid
    # Insertion sort: a line matches few atoms of multi-atom terms.
    for a in range(1, s.n_multi):
        x = s.multi[a]
        b = a - 1
        while b >= 0 and s.multi[b] > x:
            s.multi[b + 1] = s.multi[b]
            b -= 1
        s.multi[b + 1] = x
    a = 0
    while a < s.n_multi:
        term = s.multi[a] >> 14
        distinct = 0
        k = a
        while k < s.n_multi and (s.multi[k] >> 14) == term:
            if k == a or s.multi[k] != s.multi[k - 1]:
                distinct += 1
            k += 1
        sid = <int32_t>(term >> 28) + <int32_t>r.lo
        if distinct == (term & 0x3FFF) and seen[sid - r.lo] != stamp:
            seen[sid - r.lo] = stamp
            if not _push_val(s, sid):
                return False
        a = k
    return True


cdef void _compare(KvRules r, const uint8_t* v, Py_ssize_t n, const uint8_t* lower, int32_t key, uint8_t* tmp,
                   int32_t[::1] atom_hit, int32_t stamp) noexcept nogil:
    """Mark the comparisons on ``key`` that this value passes (``lower``: it in lower case)."""
    cdef int64_t g, la, lb
    cdef int32_t atom
    cdef uint8_t op
    cdef bint number = _is_number(v, n), hit
    cdef Py_ssize_t c = -1, sk = -1
    cdef int cmp
    for g in range(r.kc_start[key], r.kc_start[key + 1]):
        atom = r.c_atom[g]
        if atom_hit[atom] == stamp:
            continue
        op = r.c_op[g]
        la = r.c_lit_off[g]
        lb = r.c_lit_off[g + 1]
        hit = False
        if op == OP_EQ or op == OP_NE:  # the literal's equality token (rules/equality.py)
            if r.c_lit[la] == 110:  # 'n': numeric equality
                if number:
                    if c < 0:
                        c = _canonical(v, n, tmp)
                    hit = c == lb - la - 2 and memcmp(tmp, &r.c_lit[la + 2], c) == 0
            else:
                hit = n == lb - la - 2 and memcmp(lower, &r.c_lit[la + 2], n) == 0
        elif op <= OP_GE:
            if number:
                if sk < 0:  # after the canonical form's room in tmp
                    sk = _sort_key(v, n, tmp + 2 * n + 40, tmp + n + 8)
                cmp = _lexcmp(tmp + n + 8, sk, &r.c_lit[la], lb - la)
                hit = (cmp < 0 if op == OP_LT else cmp > 0 if op == OP_GT else cmp <= 0 if op == OP_LE else cmp >= 0)
        elif op == OP_CONTAINS:
            hit = _find(lower, n, &r.c_lit[la], lb - la)
        elif op == OP_STARTSWITH:
            hit = lb - la <= n and memcmp(lower, &r.c_lit[la], lb - la) == 0
        elif op == OP_ENDSWITH:
            hit = lb - la <= n and memcmp(lower + n - (lb - la), &r.c_lit[la], lb - la) == 0
        if hit:
            atom_hit[atom] = stamp


cdef bint _run(KvRules r, int32_t p, int32_t[::1] key_seen, int32_t[::1] atom_hit, int32_t stamp,
               uint8_t* stack) noexcept nogil:
    """Run program ``p``: atoms pass by their marks (``!=``: key present and no value equal)."""
    cdef int64_t g
    cdef int32_t code, depth = 0, key
    cdef bint v
    for g in range(r.prog_start[p], r.prog_start[p + 1]):
        code = r.prog[g]
        if code >= 0:  # a comparison (§4.4): absent key false; `!=` true when present and no value equal
            if r.atom_neg[code]:
                v = key_seen[r.atom_key[code]] == stamp and atom_hit[code] != stamp
            else:
                v = atom_hit[code] == stamp
            stack[depth] = v
            depth += 1
        elif code == P_NOT:
            stack[depth - 1] = not stack[depth - 1]
        else:
            depth -= 1
            if code == P_AND:
                stack[depth - 1] = stack[depth - 1] and stack[depth]
            else:
                stack[depth - 1] = stack[depth - 1] or stack[depth]
    return depth == 1 and stack[0]


cdef object _profiles(const uint8_t[::1] data, const int64_t[::1] starts, int32_t[:, ::1] counts, int32_t[::1] line_prof,
                      const int64_t[::1] line_off, const uint8_t[::1] tainted, const int32_t[::1] nlines,
                      const int64_t[::1] first, const int64_t[::1] length, const int32_t[::1] vals,
                      int32_t n_prof, int32_t cap, bint count_devices):
    """Which lines belong to simple profiles, and each simple profile's distinct traits."""
    cdef Py_ssize_t n = starts.shape[0], i, k, j
    cdef int32_t p
    cdef int64_t m = 0, devices = 0, idb = 0
    simple_prof_a = np.zeros(n_prof + 1, dtype=np.uint8)
    line_simple_a = np.zeros(n, dtype=np.uint8)
    prof_start_a = np.zeros(n_prof + 2, dtype=np.int64)  # counting sort of the simple lines by profile
    cdef uint8_t[::1] simple_prof = simple_prof_a
    cdef uint8_t[::1] line_simple = line_simple_a
    cdef int64_t[::1] prof_start = prof_start_a
    order_a = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] order = order_a
    out_off_a = np.zeros(n_prof + 1, dtype=np.int64)
    out_vals_a = np.empty(max(1, vals.shape[0]), dtype=np.int32)
    stored_a = np.zeros(n_prof + 1, dtype=np.uint8)
    id_off_a = np.zeros(n_prof + 1, dtype=np.int64)
    cdef int64_t[::1] out_off = out_off_a
    cdef int32_t[::1] out_vals = out_vals_a
    cdef uint8_t[::1] stored = stored_a
    cdef int64_t[::1] id_off = id_off_a
    # Traits are made distinct per profile with a hash-free mark: the trait's last profile.
    cdef int32_t lo_sid = 0x7FFFFFFF, hi_sid = -1
    for k in range(vals.shape[0]):
        if vals[k] < lo_sid:
            lo_sid = vals[k]
        if vals[k] > hi_sid:
            hi_sid = vals[k]
    mark_a = np.full(max(1, hi_sid - lo_sid + 1), -1, dtype=np.int32)
    cdef int32_t[::1] mark = mark_a
    with nogil:
        for p in range(n_prof):
            simple_prof[p] = not tainted[p] and 0 < nlines[p] <= cap
            prof_start[p + 1] = prof_start[p] + (nlines[p] if simple_prof[p] else 0)
            id_off[p + 1] = id_off[p] + length[p]
        for i in range(n):
            p = line_prof[i]
            if p >= 0 and simple_prof[p]:
                line_simple[i] = 1
                order[prof_start[p]] = i
                prof_start[p] += 1
        j = 0
        for p in range(n_prof):
            if simple_prof[p]:
                for k in range(j, prof_start[p]):
                    i = order[k]
                    if counts[3, i] > 0:
                        stored[p] = 1
                    for idb in range(line_off[i], line_off[i + 1]):
                        if mark[vals[idb] - lo_sid] != p:
                            mark[vals[idb] - lo_sid] = p
                            out_vals[m] = vals[idb]
                            m += 1
                j = prof_start[p]
                if stored[p] and count_devices:
                    devices += 1
            out_off[p + 1] = m
    ids_a = np.empty(max(1, id_off[n_prof]), dtype=np.uint8)
    cdef uint8_t[::1] ids = ids_a
    with nogil:
        for p in range(n_prof):
            for k in range(length[p]):
                ids[id_off[p] + k] = data[starts[first[p]] + k]
    return {
        "simple": line_simple_a.view(bool), "items": np.asarray(counts)[0],
        "used": np.asarray(counts)[1], "failed": np.asarray(counts)[2], "realized": np.asarray(counts)[3],
        "line_prof": np.asarray(line_prof), "simple_prof": simple_prof_a[:n_prof].view(bool),
        "ids": ids_a, "id_offsets": id_off_a, "offsets": out_off_a, "sids": out_vals_a[:m], "devices": int(devices),
    }


def _number_sort_key(bytes value):
    """rules/values.number_sort_key through the native code (for tests)."""
    cdef const uint8_t* v = value
    cdef Py_ssize_t n = len(value)
    out = bytearray(2 * n + 32)
    tmp = bytearray(2 * n + 32)
    cdef uint8_t* o = out
    cdef uint8_t* t = tmp
    if not _is_number(v, n):
        return None
    return bytes(out[:_sort_key(v, n, t, o)])


def _canonical_decimal(bytes value):
    """rules/values.canonical_decimal through the native code (for tests)."""
    cdef const uint8_t* v = value
    cdef Py_ssize_t n = len(value)
    out = bytearray(n + 8)
    cdef uint8_t* o = out
    if not _is_number(v, n):
        return None
    return bytes(out[:_canonical(v, n, o)])
