# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Dealing lines into chunks by their user ID while they are read (engine/chunks.py).

Lines of one profile must share a chunk; any function of the user ID's bytes deals them
so. Hashing the bytes up to the first TAB here saves DuckDB a decode and a split per line.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy

import numpy as np

cdef enum:
    TAB = 9


cdef inline uint64_t _mix(uint64_t h) noexcept nogil:
    h ^= h >> 33
    h *= <uint64_t>0xFF51AFD7ED558CCD
    h ^= h >> 33
    return h


def first_field_chunks(const uint8_t[::1] data, const int64_t[::1] starts, const int64_t[::1] ends, uint32_t chunks):
    """Per line ``data[starts[i]:ends[i]]``: a hash of its bytes before the first TAB (all of
    them without one), modulo ``chunks``."""
    cdef Py_ssize_t n = starts.shape[0], i, s, e, k
    out_a = np.empty(n, dtype=np.uint32)
    cdef uint32_t[::1] out = out_a
    cdef const uint8_t* base = &data[0] if data.shape[0] else NULL
    cdef const uint8_t* tab
    cdef uint64_t h, w
    with nogil:
        for i in range(n):
            s = starts[i]
            e = ends[i]
            if e > s:
                tab = <const uint8_t*>memchr(base + s, TAB, e - s)
                if tab != NULL:
                    e = tab - base
            h = <uint64_t>(e - s) * <uint64_t>0x9E3779B97F4A7C15
            k = s
            while k + 8 <= e:
                memcpy(&w, base + k, 8)
                h = _mix(h ^ w) * <uint64_t>0xC2B2AE3D27D4EB4F
                k += 8
            if k < e:
                w = 0
                memcpy(&w, base + k, e - k)
                h = _mix(h ^ w) * <uint64_t>0xC2B2AE3D27D4EB4F
            out[i] = <uint32_t>(_mix(h) % chunks)
    return out_a
