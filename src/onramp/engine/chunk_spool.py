"""Lines written into their chunks' Parquet files as they are read (ADR 0008 addendum).

When the reader deals each line into its chunk itself (``chunks.line_chunks``), the
lines need no SQL on their way to disk: pyarrow groups each batch by chunk and appends
the groups to one Parquet file per chunk, while a thread decompresses and splits the next
batches. The files are laid out as DuckDB's ``PARTITION_BY (chunk)`` writes them
(``<root>/chunk=<k>/data_0.parquet``) and written like the other scratch files: no
compression, no dictionary pages, and no statistics (nothing reads them).

10M key-value lines (1.7 GB): DuckDB's partitioned ``COPY`` of the same batches took
27.3 s; this writer, with reading on its own thread, is measured in docs/performance.md.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FLUSH_ROWS = 32_768  # rows a chunk collects before they are written as one row group
_DONE = object()


class ChunkWriter:
    """Per-chunk Parquet files of ``schema`` rows under ``root``."""

    def __init__(self, root: Path, schema: pa.Schema):
        self.root, self.schema = Path(root), schema
        self._writers: dict[int, pq.ParquetWriter] = {}
        self._pending: dict[int, list[pa.RecordBatch]] = {}
        self._rows: dict[int, int] = {}

    def write(self, batch: pa.RecordBatch, chunk: np.ndarray) -> None:
        """Append ``batch``'s rows to their chunks (``chunk[i]``: the chunk of row ``i``)."""
        if batch.num_rows == 0:
            return
        order = np.argsort(chunk, kind="stable")  # keeps the lines' order within a chunk
        ordered = batch.take(pa.array(order))
        sorted_chunks = chunk[order]
        starts = np.flatnonzero(np.r_[True, sorted_chunks[1:] != sorted_chunks[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for s, e in zip(starts.tolist(), ends.tolist()):
            k = int(sorted_chunks[s])
            self._pending.setdefault(k, []).append(ordered.slice(s, e - s))
            self._rows[k] = self._rows.get(k, 0) + e - s
            if self._rows[k] >= FLUSH_ROWS:
                self._flush(k)

    def close(self) -> None:
        for k in list(self._pending):
            self._flush(k)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _flush(self, k: int) -> None:
        pieces = self._pending.pop(k, [])
        self._rows[k] = 0
        if not pieces:
            return
        if k not in self._writers:
            directory = self.root / f"chunk={k}"
            directory.mkdir(parents=True, exist_ok=True)
            self._writers[k] = pq.ParquetWriter(str(directory / "data_0.parquet"), self.schema, compression="none",
                                                use_dictionary=False, write_statistics=False)
        self._writers[k].write_table(pa.Table.from_batches(pieces, schema=self.schema))


def read_ahead(batches: Iterator[pa.RecordBatch], depth: int = 4) -> Iterator[pa.RecordBatch]:
    """``batches``, produced on a thread up to ``depth`` ahead of the consumer (decompression
    and line splitting overlap the writing). Closing the result stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: object) -> bool:
        """Queue ``item`` unless the consumer stopped first."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure.append(exc)
        finally:
            put(_DONE)

    thread = threading.Thread(target=produce, name="onramp-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()
        close = getattr(batches, "close", None)
        if close is not None:
            close()
