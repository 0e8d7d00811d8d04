"""The ID-sync loader process: moves the ID-sync log into the store for a running server.

Why a process: a load decodes tens of thousands of log lines in Python. In a thread of
the server it holds the GIL for tens of milliseconds at a time, and the event loop then
waits for it at every system call — the pixel's p99 latency rose from a few ms to
~70 ms at 2,000 req/s (bench/run_idsync.py). Here it runs at low priority, with one
DuckDB thread, and the server's event loop keeps a core to itself.

Protocol (one JSON object per line): the process says ``{"ready": true}`` once started;
then the server writes ``load`` and the process answers
``{"loaded": n, "dpids": [...]}``, ``{"busy": true}`` when the store is held elsewhere, or
``{"error": "..."}``. End of input ends the process, so it dies with its server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from onramp.settings import EngineSettings, Settings

NICE = 10


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m onramp.server.loader_process")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--engine", required=True, help="engine settings as JSON")
    args = p.parse_args(argv)
    os.nice(NICE)
    engine = EngineSettings.model_validate_json(args.engine).model_copy(update={"threads": 1})
    settings = Settings(data_dir=args.data_dir, engine=engine)
    from onramp.server.idsync import store_cycle

    print(json.dumps({"ready": True}), flush=True)  # imports done: loads start at once
    for line in sys.stdin:
        if line.strip() != "load":
            continue
        try:
            result = store_cycle(settings, wait=False)
            answer = {"busy": True} if result is None else {"loaded": result[0], "dpids": sorted(result[1])}
        except Exception as exc:  # noqa: BLE001 - reported to the server, which logs it
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)


class LoaderProcess:
    """The server's handle on the loader process, started on first use, restarted if it dies."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process and wait until it is ready. The server does this before it
        serves: the process's imports take a CPU-second that would otherwise show up as a
        latency spike of the pixel at the first load."""
        if self.proc is not None and self.proc.returncode is None:
            return
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "onramp.server.loader_process", "--data-dir", str(self.settings.data_dir),
            "--engine", self.settings.engine.model_dump_json(),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        await self._answer()

    async def load(self) -> tuple[int, frozenset[int]] | None:
        """One store cycle in the loader process; None when the store was busy."""
        await self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"load\n")
        await self.proc.stdin.drain()
        answer = await self._answer()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        if answer.get("busy"):
            return None
        return int(answer["loaded"]), frozenset(answer["dpids"])

    async def _answer(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            await self.proc.wait()
            raise RuntimeError(f"the ID-sync loader process exited with {self.proc.returncode}")
        return json.loads(line)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=30)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()


if __name__ == "__main__":
    main()
