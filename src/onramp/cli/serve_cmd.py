"""`onramp serve`: the long-running platform (DESIGN §1). Thin over ``service.serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onramp.settings import load_settings


def serve(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="TOML configuration file (overrides the global --config / ONRAMP_CONFIG).")] = None,
) -> None:
    """Run the platform until SIGTERM or Ctrl-C: drop zones and partner FTP/SFTP, continuous
    inbound processing, receipts written back and mailed, HTTP ID sync and REST API.

    With no configuration: a local drop zone per environment under the data directory,
    FTP on 127.0.0.1:2121, HTTP on 127.0.0.1:8080, receipt mail written to <data dir>/outbox/.
    Logs what it listens on to stderr.
    """
    from onramp.service.serve import configure_logging
    from onramp.service.serve import serve as run

    obj = ctx.find_root().obj or {}
    settings = load_settings(config or obj.get("config"), data_dir=obj.get("data_dir"))
    configure_logging()
    raise typer.Exit(run(settings))
