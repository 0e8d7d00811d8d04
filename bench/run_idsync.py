"""ID-sync endpoint benchmark (SPEC §2.1, DESIGN §5): one server, one run, three measurements.

    python bench/run_idsync.py                   # 10 s per phase
    python bench/run_idsync.py --seconds 30 --connections 256 --rate 2000

It starts ``python -m onramp.server`` (one uvicorn worker, durable group-committed
writes, the loader moving syncs into the store every 2 s as in production) on a free
loopback port, with the baseline route ``/_bare`` enabled, then measures in one run:

1. ``baseline``: ``wrk`` against ``/_bare`` — the same server answering 200 with the
   pixel's GIF and doing nothing else: the ceiling of the server itself;
2. ``durable``: ``wrk`` with ``bench/idsync.lua`` — every call a new user ID (so every
   call is a durable write), every other call with a platform-UUID cookie: max req/s;
3. ``fixed rate``: an open-loop generator (``onramp.testing.pixel_client``, latency from
   each request's scheduled time) at ``--rate`` req/s against the pixel and against
   ``/_bare``: p50/p99/max. (wrk is closed-loop, and wrk2 is not packaged by Debian.)

Then it stops the server, checks that every answered sync reached the store, prints a table and writes ``bench/results/idsync-<date>.json``. Exit 1 when a
target is missed or a check fails. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TAXONOMY = """
partners: [{pid: 7, name: acme}]
data_sources: [{dpid: 21, owner: 7, name: Acme cookies, id_type: cookie, inbound_id_type: customer_id}]
"""
TARGET_RPS = 5_000  # DESIGN §5: durable writes, one worker
TARGET_P99_MS = 20.0  # at 2,000 req/s
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_wrk(out: str) -> dict[str, Any]:
    """The numbers of a ``wrk --latency`` report (latencies in ms)."""
    def num(pattern: str, default: float = 0.0) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else default

    lat = {f"p{p}": float(v) * _UNITS[u] for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(num(r"(\d+) requests in")),
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "latency_ms": lat,
        "non_2xx_3xx": int(num(r"Non-2xx or 3xx responses: (\d+)")),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


class Server:
    def __init__(self, data_dir: Path, commit_ms: int, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "ONRAMP_NOW"}
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "onramp.server", "--data-dir", str(data_dir), "--port", str(self.port),
                 "--commit-ms", str(commit_ms), "--baseline-route"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            )
        self.ps = psutil.Process(self.proc.pid)
        self._wait_ready(log)

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited:\n{log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("server did not start within 60 s")

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def wrk(server: Server, path: str, *, seconds: int, connections: int, script: Path | None = None) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script is not None:
        cmd += ["-s", str(script)]
    cpu0 = server.cpu()
    out = subprocess.run([*cmd, server.base + path], capture_output=True, text=True, check=True).stdout
    result = parse_wrk(out)
    result["server_cpu_us_per_request"] = round((server.cpu() - cpu0) / max(result["requests"], 1) * 1e6, 1)
    result["command"] = " ".join(cmd + [path])
    return result


def fixed_rate(server: Server, make_target, *, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    import uvloop

    from onramp.testing.pixel_client import run_open_loop

    cpu0 = server.cpu()
    lat, statuses, waited = uvloop.run(run_open_loop("127.0.0.1", server.port, make_target, rate=rate, seconds=seconds,
                                                     connections=connections))
    lat.sort()
    n = len(lat)

    def pct(p: float) -> float:
        return round(lat[min(n - 1, int(p / 100 * n))] * 1e3, 2)

    return {"rate": rate, "seconds": seconds, "requests": n, "statuses": statuses, "sent_late": waited,
            "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "p999": pct(99.9), "max": round(lat[-1] * 1e3, 2)},
            "server_cpu_us_per_request": round((server.cpu() - cpu0) / max(n, 1) * 1e6, 1)}


def environment() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    import uvicorn

    return {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg(), "python": platform.python_version(),
            "uvicorn": uvicorn.__version__, "wrk": version(["wrk", "-v"]),
            "git": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="duration of each measured phase")
    ap.add_argument("--connections", type=int, default=256, help="wrk connections for the max-throughput phases")
    ap.add_argument("--rate", type=float, default=2000, help="requests/s of the fixed-rate phase")
    ap.add_argument("--rate-connections", type=int, default=64, help="connection pool of the fixed-rate generator")
    ap.add_argument("--commit-ms", type=int, default=5, help="http.idsync_commit_ms of the server")
    ap.add_argument("--keep", action="store_true", help="keep the data directory (bench/data/idsync-*)")
    ap.add_argument("--results", type=Path, default=BENCH / "results")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `./run bench-idsync` installs it (Debian package wrk)")
    if os.getloadavg()[0] > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {os.getloadavg()[0]:.1f} at start; numbers will be low and noisy", file=sys.stderr)

    from onramp.settings import Settings
    from onramp.store.db import connect
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import load_taxonomy

    (BENCH / "data").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="idsync-", dir=BENCH / "data"))
    data_dir = work / "data"
    con = connect(Settings(data_dir=data_dir))
    apply_taxonomy(con, load_taxonomy(TAXONOMY)[0])
    con.close()

    env = environment()
    server = Server(data_dir, args.commit_ms, work / "server.log")
    results: dict[str, Any] = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "environment": env, "options": {k: str(v) for k, v in vars(args).items()}}
    try:
        script = BENCH / "idsync.lua"
        wrk(server, "/_bare", seconds=2, connections=args.connections)  # warm-up
        wrk(server, "/", seconds=2, connections=args.connections, script=script)
        results["baseline"] = wrk(server, "/_bare", seconds=args.seconds, connections=args.connections)
        results["durable"] = wrk(server, "/", seconds=args.seconds, connections=args.connections, script=script)
        stamp = int(time.time())
        results["fixed_rate_pixel"] = fixed_rate(
            server, lambda i: f"/ibs:dpid=21&dpuuid=rate%2F{stamp}-{i}", rate=args.rate, seconds=args.seconds,
            connections=args.rate_connections)
        results["fixed_rate_baseline"] = fixed_rate(
            server, lambda i: "/_bare", rate=args.rate, seconds=args.seconds, connections=args.rate_connections)
    finally:
        results["server_exit"] = server.stop()

    # Every answered sync was durable, so it must be in the store once the server has
    # stopped (it loads the rest of its log on shutdown). Warm-up syncs come on top.
    answered = results["durable"]["requests"] + results["fixed_rate_pixel"]["requests"]
    con = connect(Settings(data_dir=data_dir), read_only=True)
    links = con.execute("SELECT count(*) FROM links").fetchall()[0][0]
    con.close()
    results["checks"] = {"answered_syncs": answered, "links_in_store": links}

    d, b = results["durable"], results["baseline"]
    fr, fb = results["fixed_rate_pixel"], results["fixed_rate_baseline"]
    rows = [
        ("baseline /_bare (wrk)", f"{b['rps']:,.0f}", b["latency_ms"].get("p50", 0), b["latency_ms"].get("p99", 0), b["server_cpu_us_per_request"]),
        ("pixel, durable (wrk)", f"{d['rps']:,.0f}", d["latency_ms"].get("p50", 0), d["latency_ms"].get("p99", 0), d["server_cpu_us_per_request"]),
        (f"pixel @ {args.rate:,.0f}/s open loop", f"{fr['requests'] / args.seconds:,.0f}", fr["latency_ms"]["p50"], fr["latency_ms"]["p99"], fr["server_cpu_us_per_request"]),
        (f"/_bare @ {args.rate:,.0f}/s open loop", f"{fb['requests'] / args.seconds:,.0f}", fb["latency_ms"]["p50"], fb["latency_ms"]["p99"], fb["server_cpu_us_per_request"]),
    ]
    print(f"\nload average at start {env['load_avg_start'][0]:.2f} on {env['cpus']} CPUs; {args.connections} wrk connections; "
          f"commit window {args.commit_ms} ms")
    print(f"{'phase':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU µs/req':>18}")
    for name, rps, p50, p99, cpu in rows:
        print(f"{name:34} {rps:>8} {p50:>8.2f} {p99:>8.2f} {cpu:>18}")
    print(f"durable / baseline throughput: {d['rps'] / b['rps']:.2f}")

    checks = {
        f"durable >= {TARGET_RPS:,} req/s": d["rps"] >= TARGET_RPS,
        f"p99 <= {TARGET_P99_MS:g} ms at {args.rate:,.0f} req/s": fr["latency_ms"]["p99"] <= TARGET_P99_MS,
        "no errors": (d["non_2xx_3xx"] + d["socket_errors"] + b["socket_errors"] == 0
                      and set(fr["statuses"]) == {200} and set(fb["statuses"]) == {200}),
        "every answered sync in the store": links >= answered,
    }
    results["pass"] = checks
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")

    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"idsync-{dt.date.today().isoformat()}.json"
    if out.exists():
        out = out.with_name(f"{out.stem}-{dt.datetime.now().strftime('%H%M%S')}.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
