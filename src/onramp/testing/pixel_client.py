"""A minimal HTTP/1.1 keep-alive client for driving the ID-sync pixel in tests and benchmarks.

Why not httpx: on this 2-core machine its async client spends milliseconds of CPU per
request, so it measures itself rather than the server, and a durability test of
thousands of syncs takes a minute. This client sends a GET and reads status, headers
and a ``Content-Length`` body — all the pixel ever answers — on asyncio streams.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


class PixelConnection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str, headers: dict[str, str] | None = None) -> Answer:
        """``GET target`` (sent byte for byte: percent-escapes are not touched)."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"GET {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        parsed = [(k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)]
        length = int(next((v for k, v in parsed if k == "content-length"), "0"))
        body = await self._reader.readexactly(length) if length else b""
        if any(k == "connection" and v.lower() == "close" for k, v in parsed):
            await self.close()
        return Answer(int(status_line.split(" ", 2)[1]), parsed, body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self._reader = self._writer = None


async def run_closed_loop(host: str, port: int, targets: list[str], *, connections: int,
                          headers: dict[str, str] | None = None) -> list[Answer]:
    """Send every target over ``connections`` keep-alive connections; answers in target order."""
    answers: list[Answer | None] = [None] * len(targets)
    next_index = iter(range(len(targets)))

    async def worker() -> None:
        conn = PixelConnection(host, port)
        try:
            for i in next_index:
                answers[i] = await conn.get(targets[i], headers)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return [a for a in answers if a is not None]


async def run_open_loop(host: str, port: int, make_target, *, rate: float, seconds: float,
                        connections: int) -> tuple[list[float], dict[int, int], int]:
    """Send ``rate`` requests per second for ``seconds``, on schedule, whatever the answers do.

    Latency is measured from each request's *scheduled* time, so a stalled server cannot
    hide its stall by slowing the generator down (no coordinated omission). Returns
    (latencies in seconds, count per status, requests that could not be sent on time
    because every connection was busy — they are sent late and counted in latency).
    """
    pool: asyncio.Queue[PixelConnection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(PixelConnection(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    waited = 0
    tasks: set[asyncio.Task] = set()

    async def one(i: int, due: float) -> None:
        nonlocal waited
        if pool.empty():
            waited += 1
        conn = await pool.get()
        try:
            answer = await conn.get(make_target(i))
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*list(tasks))
    while not pool.empty():
        await pool.get_nowait().close()
    return latencies, statuses, waited
