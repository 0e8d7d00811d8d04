"""Upload-settled → receipt latency of `onramp serve` (issue #3, DESIGN §5: ≤ 60 s for 1 GB).

Starts a real `onramp serve` on a fresh data directory with a 1-second settle window,
moves a generated file into the local drop zone the way an upload completes (rename of
a finished file), and times until the service has written the receipt back next to it.
The settle window is subtracted. Prints one line and writes bench/results/upload-*.json.

    .venv/bin/python bench/run_upload_latency.py                  # ~1 GB uncompressed d_sid file
    .venv/bin/python bench/run_upload_latency.py --lines 1000000  # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (bench/generate.py)

from onramp.testing.serve_process import ServeProcess  # noqa: E402

SETTLE_SECONDS = 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=12_900_000, help="default: ~1 GB uncompressed d_sid lines")
    parser.add_argument("--kind", choices=["dsid", "kv"], default="dsid")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)

    print(f"[{args.kind}] generating {args.lines:,} lines ...", flush=True)
    taxonomy = generate.ensure_taxonomy(args.data)
    stats = generate.ensure_data_file(args.kind, args.lines, args.data)
    src = Path(stats["path"])
    work = args.data / f"upload-{args.kind}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    data_dir = work / "onramp-data"
    onramp = [sys.executable, "-m", "onramp", "--data-dir", str(data_dir)]
    subprocess.run([*onramp, "taxonomy", "apply", str(taxonomy)], check=True, capture_output=True)
    env = {"ONRAMP_INBOUND__SETTLE_SECONDS": str(SETTLE_SECONDS), "ONRAMP_FTP__ENABLED": "false"}
    service = ServeProcess(data_dir, env=env, log=work / "serve.log").wait_ready()
    try:
        folder = data_dir / "dropzone" / "prod" / "acme" / f"date={datetime.now(timezone.utc):%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{src.name}.part"
        shutil.copyfile(src, partial)  # the upload in progress: hidden, never picked up
        start = time.monotonic()
        partial.rename(folder / src.name)  # the upload completes
        while not (found := sorted(folder.glob("*.receipt.json"))):
            if time.monotonic() - start > args.timeout:
                raise TimeoutError(f"no receipt after {args.timeout} s; see {service.log}")
            if service.proc.poll() is not None:
                raise RuntimeError(f"onramp serve exited; see {service.log}")
            time.sleep(0.05)
        total = time.monotonic() - start
        receipt = found[0]
    finally:
        service.stop()
    body = json.loads(receipt.read_text())
    latency = total - SETTLE_SECONDS
    result = {
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_end": os.getloadavg(),
        "kind": args.kind, "lines": stats["lines"], "uncompressed_bytes": stats["bytes"],
        "gzip_bytes": stats["file_bytes"], "settle_seconds": SETTLE_SECONDS,
        "seconds_upload_to_receipt": round(total, 2), "seconds_settled_to_receipt": round(latency, 2),
        "stored_records": body.get("stored_records"),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"upload-{datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"[{args.kind}] {stats['lines']:,} lines, {stats['bytes'] / 1e9:.2f} GB uncompressed: "
          f"settled → receipt {latency:.1f} s (target ≤ 60 s); stored {body.get('stored_records'):,}; {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if latency <= 60 else 1


if __name__ == "__main__":
    sys.exit(main())
