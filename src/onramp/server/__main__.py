"""``python -m onramp.server --data-dir D [--port P]``: the HTTP server alone (tests, bench).

``onramp serve`` runs it together with the drop zones and the job runner.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from onramp.server.app import run_http
from onramp.settings import load_settings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m onramp.server", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, help="data directory (default: settings)")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--host", help="listen address (default http.host)")
    p.add_argument("--port", type=int, help="listen port (default http.port)")
    p.add_argument("--commit-ms", type=int, help="group-commit window of ID syncs (default http.idsync_commit_ms)")
    p.add_argument("--baseline-route", action="store_true", help="also serve GET /_bare, the benchmark's baseline")
    args = p.parse_args(argv)
    settings = load_settings(args.config, data_dir=args.data_dir)
    http = {k: v for k, v in (("host", args.host), ("port", args.port), ("idsync_commit_ms", args.commit_ms)) if v is not None}
    if http:
        settings = settings.model_copy(update={"http": settings.http.model_copy(update=http)})
    run_http(settings, baseline_route=args.baseline_route)


if __name__ == "__main__":
    main()
