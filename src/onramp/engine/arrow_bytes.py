"""The bytes of an Arrow ``binary`` array as numpy views, for the native passes (ADR 0007)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def binary_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(data, offsets)`` with ``array[i] == data[offsets[i]:offsets[i + 1]]``; offsets as
    int64, and ``data`` never empty (the native code reads from its first byte)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1].astype(np.int64)
    data = array.buffers()[2]
    return (np.frombuffer(data, dtype=np.uint8) if data is not None and data.size else np.zeros(1, dtype=np.uint8)), offsets
