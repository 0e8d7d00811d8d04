"""Generate (and cache) benchmark partner files.

    python bench/generate.py --lines 10000000 --kind dsid --out bench/data/
    python bench/generate.py --lines 10000000 --kind kv

Writes ``<out>/taxonomy.yaml`` (the SPEC §11.2 benchmark taxonomy: data source 21 with
5,000 onboarded traits, data source 22 with 20,000 equality, 50 range and 50 contains
rules) and one gzip data file: ``ftp_dpm_21_<ts>.sync.gz`` (d_sid lines, 38-digit
platform UUIDs) or ``ftp_dpm_22_<ts>.sync.gz`` (key-value lines, CRM IDs). ``<ts>`` is
derived from the parameters, so files of different sizes live side by side. A file is
reused when its ``.json`` sidecar records the same parameters and generator version.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import yaml

from onramp.testing import generate as gen

# Bump when the generator's output changes, so cached files are rebuilt.
GENERATOR_VERSION = 1
KINDS = {"dsid": gen.DSID_DPID, "kv": gen.KV_DPID}
DEFAULT_OUT = Path(__file__).resolve().parent / "data"


def data_file_name(kind: str, lines: int, seed: int) -> str:
    """``ftp_dpm_<dpid>_<10-digit ts>.sync.gz`` with a timestamp unique to the parameters."""
    ts = 1_700_000_000 + zlib.crc32(f"{kind}:{lines}:{seed}:{GENERATOR_VERSION}".encode()) % 100_000_000
    return f"ftp_dpm_{KINDS[kind]}_{ts}.sync.gz"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _cached(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        meta = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if meta.get("params") != params or not path.exists() or path.stat().st_size != meta.get("file_bytes"):
        return None
    return meta


def _write_atomically(path: Path, write: Any) -> dict[str, Any]:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        started = time.perf_counter()
        stats = write(tmp)
        stats["seconds"] = round(time.perf_counter() - started, 3)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    stats["path"] = str(path)
    return stats


def ensure_taxonomy(out: Path, force: bool = False) -> Path:
    """``<out>/taxonomy.yaml`` from ``bench_taxonomy()`` (defaults), written once."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "taxonomy.yaml"
    params = {"taxonomy": "bench_taxonomy()", "version": GENERATOR_VERSION}
    if force or _cached(path, params) is None:

        def write(tmp: Path) -> dict[str, Any]:
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            tmp.write_text(yaml.dump(gen.bench_taxonomy(), Dumper=dumper, sort_keys=False, width=1000))
            return {}

        stats = _write_atomically(path, write)
        _sidecar(path).write_text(json.dumps({"params": params, "file_bytes": path.stat().st_size, **stats}))
    return path


def ensure_data_file(kind: str, lines: int, out: Path, seed: int = 1, force: bool = False) -> dict[str, Any]:
    """Generate the ``kind`` file of ``lines`` lines unless an identical one exists.

    Returns the generator's stats (``path``, ``lines``, ``bytes`` uncompressed,
    ``file_bytes``, ``seconds``) plus ``cached``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / data_file_name(kind, lines, seed)
    params = {"kind": kind, "lines": lines, "seed": seed, "version": GENERATOR_VERSION}
    if not force and (meta := _cached(path, params)) is not None:
        return {**meta["stats"], "cached": True}
    if kind == "dsid":
        stats = _write_atomically(path, lambda tmp: gen.write_dsid_file(tmp, lines, seed=seed))
    else:
        stats = _write_atomically(path, lambda tmp: gen.write_kv_file(tmp, lines, seed=seed))
    _sidecar(path).write_text(json.dumps({"params": params, "file_bytes": stats["file_bytes"], "stats": stats}))
    return {**stats, "cached": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--kind", choices=sorted(KINDS), required=True)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--force", action="store_true", help="regenerate even if a cached file matches")
    args = parser.parse_args(argv)
    taxonomy = ensure_taxonomy(args.out, args.force)
    stats = ensure_data_file(args.kind, args.lines, args.out, args.seed, args.force)
    how = "cached"
    if not stats["cached"]:
        how = f"generated in {stats['seconds']:.1f} s ({stats['lines'] / stats['seconds']:,.0f} lines/s)"
    print(f"taxonomy: {taxonomy}")
    print(
        f"{args.kind}: {stats['path']}  {stats['lines']:,} lines, {stats['bytes'] / 1e6:,.1f} MB uncompressed, "
        f"{stats['file_bytes'] / 1e6:,.1f} MB gzip; {how}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
