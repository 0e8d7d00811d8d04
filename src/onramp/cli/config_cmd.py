"""`onramp config …`: the configuration as Onramp sees it (issue #3, docs/settings.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from onramp.cli import output
from onramp.settings import load_settings
from onramp.settings_doc import masked_config, to_toml

config_app = typer.Typer(no_args_is_help=True, help="The effective configuration.")


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of TOML.")] = False) -> None:
    """Print the effective configuration (options > environment > --config TOML > defaults), secrets masked."""
    obj = ctx.obj or {}
    data = masked_config(load_settings(obj.get("config"), data_dir=obj.get("data_dir")))
    if json_out:
        output.print_json(data)
    else:
        output.print_text(to_toml(data))
