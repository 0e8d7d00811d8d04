"""Inbound onboarding benchmark: ``onramp ingest`` against decompression baselines, in one run.

    python bench/run_ingest.py                          # 10M-line d_sid and key-value files
    python bench/run_ingest.py --lines 200000 --kinds dsid
    python bench/run_ingest.py --peak-rss-file          # peak RSS on a ~2 GiB (uncompressed) kv file

For each kind the script generates (or reuses) the file with ``bench/generate.py``, then
measures on the same file, in this order:

1. ``gzip -dc FILE > /dev/null`` wall time (and ``pigz -dc`` when installed);
2. python-isal decompression (``isal.igzip``, 1 MiB reads), timed inside the child: the floor;
3. ``onramp --data-dir D taxonomy apply taxonomy.yaml`` into a fresh data directory (timed
   separately, not part of ingest), then ``onramp --data-dir D ingest --json FILE``: wall
   time, peak RSS of the process tree (psutil, every 50 ms) and the child's own
   ``ru_maxrss`` (``wait4``), CPU time, and the receipt counters.

It prints a table and writes ``bench/results/ingest-<date>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate  # noqa: E402  (bench/generate.py, next to this file)

from onramp.testing import generate as gen  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
POLL_SECONDS = 0.05
PEAK_RSS_FILE_BYTES = 2 * 1024**3  # "a 2 GB uncompressed file": at least 2 GiB
RSS_LIMIT_BYTES = 2 * 10**9  # "≤ 2 GB RSS", read strictly

# kind → (issue minimum lines/s, DESIGN.md §5 target lines/s, DESIGN.md §5 max ratio to gzip -dc)
TARGETS: dict[str, tuple[int, int, float | None]] = {
    "dsid": (400_000, 1_000_000, 3.0),
    "kv": (150_000, 400_000, None),
}

ISAL_READ = """
import sys, time
from isal import igzip
buf = memoryview(bytearray(1 << 20))
n, t = 0, time.perf_counter()
with igzip.open(sys.argv[1], "rb") as f:
    while (got := f.readinto(buf)):
        n += got
print(n, time.perf_counter() - t)
"""


def onramp_command(explicit: str | None) -> list[str]:
    """The ``onramp`` entry point of this interpreter's environment (or ``--onramp``)."""
    if explicit:
        return [explicit]
    beside = Path(sys.executable).with_name("onramp")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("onramp")
    return [found] if found else [sys.executable, "-m", "onramp.cli.app"]


def timed(cmd: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, **kwargs)
    return time.perf_counter() - started, proc


def gzip_baseline(tool: str, path: Path) -> float | None:
    exe = shutil.which(tool)
    if exe is None:
        return None
    seconds, proc = timed([exe, "-dc", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} -dc {path} failed: {proc.stderr.decode()[-500:]}")
    return seconds


def isal_baseline(path: Path) -> tuple[float, int]:
    proc = subprocess.run([sys.executable, "-c", ISAL_READ, str(path)], capture_output=True, check=True)
    n_bytes, seconds = proc.stdout.split()
    return float(seconds), int(n_bytes)


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(cmd: list[str], log_dir: Path, name: str) -> dict[str, Any]:
    """Run ``cmd``; wall time, peak tree RSS (polled), ``ru_maxrss`` and CPU time from wait4."""
    out_path, err_path = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        watched = psutil.Process(proc.pid)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                peak = max(peak, tree_rss(watched))
            except psutil.NoSuchProcess:
                pass
            time.sleep(POLL_SECONDS)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "exit_code": proc.returncode,
        "wall_s": wall,
        "peak_rss_bytes": peak,
        "ru_maxrss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "stdout": out_path.read_bytes(),
        "stderr": err_path.read_text(errors="replace")[-2000:],
    }


def receipt_summary(stdout: bytes) -> dict[str, Any]:
    """Sum the §11.3 counters over the receipt objects ``ingest --json`` printed."""
    receipts = json.loads(stdout)
    if isinstance(receipts, dict):
        receipts = [receipts]
    keys = ("records_received", "records_processed", "stored_records", "format_errors", "no_trait_realized",
            "total_realized_traits", "total_signals", "total_unused_signals")
    summary: dict[str, Any] = {k: sum(int(r.get(k) or 0) for r in receipts) for k in keys}
    summary["files"] = [f for r in receipts for f in r.get("files", [])]
    return summary


def measure_ingest(
    onramp: list[str], taxonomy: Path, data_file: Path, keep: bool, label: str, work: Path
) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"ingest-{label}-", dir=work))
    result: dict[str, Any] = {"data_dir": str(data_dir)}
    try:
        apply_s, applied = timed(
            [*onramp, "--data-dir", str(data_dir), "taxonomy", "apply", str(taxonomy)], capture_output=True
        )
        result["taxonomy_apply_s"] = round(apply_s, 3)
        if applied.returncode != 0:
            stderr = applied.stderr.decode(errors="replace")[-1000:]
            result["error"] = f"taxonomy apply exited {applied.returncode}: {stderr}"
            return result
        cmd = [*onramp, "--data-dir", str(data_dir), "ingest", "--json", str(data_file)]
        run = run_measured(cmd, data_dir, "ingest")
        result.update({k: v for k, v in run.items() if k not in ("stdout", "stderr")})
        if run["exit_code"] != 0:
            result["error"] = f"ingest exited {run['exit_code']}: {run['stderr']}"
        try:
            result["receipt"] = receipt_summary(run["stdout"])
        except (ValueError, TypeError, AttributeError) as e:
            result.setdefault("error", f"could not read the receipt JSON ({e}): {run['stdout'][:300]!r}")
        return result
    finally:
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
            result["data_dir"] = None


def lines_for_bytes(target: int, seed: int) -> int:
    """Lines of a kv file whose uncompressed size is at least ``target`` bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        sample = gen.write_kv_file(Path(tmp) / "sample.txt", 50_000, seed=seed)
    return math.ceil(target / (sample["bytes"] / sample["lines"]) * 1.01)


def bench_one(kind: str, lines: int, label: str, args: argparse.Namespace, onramp: list[str]) -> dict[str, Any]:
    print(f"[{label}] generating {lines:,} lines ...", flush=True)
    taxonomy = generate.ensure_taxonomy(args.data)
    stats = generate.ensure_data_file(kind, lines, args.data, args.seed)
    path = Path(stats["path"])
    row: dict[str, Any] = {
        "kind": kind,
        "label": label,
        "file": path.name,
        "lines": lines,
        "uncompressed_bytes": stats["bytes"],
        "gzip_bytes": stats["file_bytes"],
        "generate_s": None if stats["cached"] else stats["seconds"],
    }
    print(f"[{label}] baselines on {path.name} ...", flush=True)
    row["gzip_dc_s"] = gzip_baseline("gzip", path)
    row["pigz_dc_s"] = gzip_baseline("pigz", path)
    row["isal_s"], isal_bytes = isal_baseline(path)
    if isal_bytes != stats["bytes"]:
        raise RuntimeError(f"{path}: isal read {isal_bytes} bytes, the generator wrote {stats['bytes']}")
    if args.skip_ingest:
        return row
    print(f"[{label}] onramp taxonomy apply + ingest ...", flush=True)
    ingest = measure_ingest(onramp, taxonomy, path, args.keep, label, args.data)
    row["ingest"] = ingest
    if "wall_s" in ingest and "error" not in ingest:
        wall = ingest["wall_s"]
        row["lines_per_s"] = lines / wall
        row["ratio_gzip_dc"] = wall / row["gzip_dc_s"] if row["gzip_dc_s"] else None
        row["ratio_isal"] = wall / row["isal_s"]
        row["checks"] = checks(kind, label, row)
    return row


def checks(kind: str, label: str, row: dict[str, Any]) -> dict[str, bool]:
    rss = row["ingest"]["peak_rss_bytes"]
    if label == "kv-2GiB":
        return {"issue: peak RSS <= 2 GB on a 2 GB file": rss <= RSS_LIMIT_BYTES}
    minimum, target, max_ratio = TARGETS[kind]
    result = {
        f"issue: >= {minimum:,} lines/s": row["lines_per_s"] >= minimum,
        f"design: >= {target:,} lines/s": row["lines_per_s"] >= target,
    }
    if max_ratio is not None and row.get("ratio_gzip_dc") is not None:
        result[f"design: <= {max_ratio:g}x gzip -dc"] = row["ratio_gzip_dc"] <= max_ratio
    return result


def cell(value: Any, spec: str, unit: str = "") -> str:
    return "-" if value is None else format(value, spec) + unit


COLUMNS = (  # header, width, value of a result row
    ("kind", -8, lambda r: r["label"]),
    ("lines", 11, lambda r: cell(r["lines"], ",")),
    ("gz MB", 8, lambda r: cell(r["gzip_bytes"] / 1e6, ",.1f")),
    ("raw MB", 8, lambda r: cell(r["uncompressed_bytes"] / 1e6, ",.1f")),
    ("gzip -dc", 9, lambda r: cell(r["gzip_dc_s"], ".2f", " s")),
    ("pigz -dc", 9, lambda r: cell(r["pigz_dc_s"], ".2f", " s")),
    ("isal", 8, lambda r: cell(r["isal_s"], ".2f", " s")),
    ("ingest", 9, lambda r: cell(r.get("ingest", {}).get("wall_s"), ".2f", " s")),
    ("lines/s", 11, lambda r: cell(r.get("lines_per_s"), ",.0f")),
    ("x gzip", 7, lambda r: cell(r.get("ratio_gzip_dc"), ".2f", "x")),
    ("x isal", 7, lambda r: cell(r.get("ratio_isal"), ".1f", "x")),
    ("peak RSS", 10, lambda r: cell((r.get("ingest", {}).get("peak_rss_bytes") or None) and
                                    r["ingest"]["peak_rss_bytes"] / 1e6, ",.0f", " MB")),
    ("stored", 11, lambda r: cell(r.get("ingest", {}).get("receipt", {}).get("stored_records"), ",")),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    def line(cells: list[str]) -> str:
        return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w, _) in zip(cells, COLUMNS))

    header = line([h for h, _, _ in COLUMNS])
    print(f"\n{header}\n{'-' * len(header)}")
    for r in rows:
        print(line([value(r) for _, _, value in COLUMNS]))
    for r in rows:
        ing = r.get("ingest", {})
        if "error" in ing:
            print(f"\n[{r['label']}] ingest failed: {ing['error']}")
        for name, ok in r.get("checks", {}).items():
            print(f"[{r['label']}] {'PASS' if ok else 'FAIL'}  {name}")


def cpu_model() -> str:
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
        git = rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except OSError:
        git = None
    import isal
    import numpy

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_bytes": psutil.virtual_memory().total,
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "isal": isal.__version__,
        "git": git,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--kinds", default="dsid,kv", help="comma-separated: dsid, kv")
    parser.add_argument("--keep", action="store_true", help="keep the data directories (under bench/data/)")
    parser.add_argument("--peak-rss-file", action="store_true",
                        help="instead: a key-value file of >= 2 GiB uncompressed; checks peak RSS <= 2 GB")
    parser.add_argument("--skip-ingest", action="store_true", help="only generate and measure the baselines")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=generate.DEFAULT_OUT)
    parser.add_argument("--results", type=Path, default=BENCH / "results")
    parser.add_argument("--onramp", help="path of the onramp executable (default: the one next to python)")
    args = parser.parse_args(argv)

    onramp = onramp_command(args.onramp)
    env = environment()
    if env["load_average_at_start"][0] > 0.5 * (env["cpus"] or 1):
        print(f"warning: load average {env['load_average_at_start'][0]:.1f} on {env['cpus']} CPUs; "
              "timings will be noisy", file=sys.stderr)
    if args.peak_rss_file:
        plan = [("kv", lines_for_bytes(PEAK_RSS_FILE_BYTES, args.seed), "kv-2GiB")]
    else:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = set(kinds) - set(generate.KINDS)
        if unknown:
            parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
        plan = [(k, args.lines, k) for k in kinds]

    rows = [bench_one(kind, lines, label, args, onramp) for kind, lines, label in plan]
    print_table(rows)

    args.results.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    stem = f"ingest-{now:%Y-%m-%d}{'-peak-rss' if args.peak_rss_file else ''}"
    out = args.results / f"{stem}.json"
    if out.exists():  # keep earlier runs of the day
        out = args.results / f"{stem}-{now:%H%M%S}.json"
    out.write_text(json.dumps({"run_at": now.isoformat(timespec="seconds"), "argv": sys.argv[1:],
                               "environment": env, "onramp": onramp, "results": rows}, indent=2, default=str))
    print(f"\nresults: {out}")
    failed = any("error" in r.get("ingest", {}) or not all(r.get("checks", {}).values()) for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
