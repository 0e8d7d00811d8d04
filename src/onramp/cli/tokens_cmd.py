"""`onramp tokens …`: REST API bearer tokens (docs/api.md). Thin over service.api_tokens."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from onramp.cli import output
from onramp.settings import Settings, load_settings

tokens_app = typer.Typer(no_args_is_help=True, help="REST API bearer tokens: admin, per-partner, metrics-only.")


def _settings(ctx: typer.Context) -> Settings:
    obj = (ctx.find_root().obj or {})
    return load_settings(obj.get("config"), data_dir=obj.get("data_dir"))


def _with_store(ctx: typer.Context, work):
    from onramp.store.db import connect

    con = connect(_settings(ctx))
    try:
        return work(con)
    finally:
        con.close()


@tokens_app.command("create")
def create(
    ctx: typer.Context,
    partner: Annotated[Optional[int], typer.Option("--partner", help="Partner PID: the token sees only that partner's data.")] = None,
    metrics: Annotated[bool, typer.Option("--metrics", help="A token that may only read /metrics (for Prometheus).")] = False,
    label: Annotated[Optional[str], typer.Option("--label", help="A note for `tokens list`, e.g. who holds it.")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored). Without options: an admin token."""
    from onramp.errors import UsageError
    from onramp.service.api_tokens import create_token
    from onramp.service.clock import system_clock

    if metrics and partner is not None:
        raise UsageError("--metrics and --partner exclude each other", hint="a metrics token belongs to no partner")
    role = "metrics" if metrics else "partner" if partner is not None else "admin"
    row, token = _with_store(ctx, lambda con: create_token(con, role=role, partner=partner, label=label, now=system_clock()))
    if json_out:
        output.print_json({**row.to_json(), "token": token})
        return
    output.print_text(token)
    who = f"partner {partner}" if partner is not None else role
    output.err.print(f"created {who} token {row.token_id}; store it now, it cannot be shown again")


@tokens_app.command("list")
def list_(ctx: typer.Context, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Stored tokens (IDs, roles, partners; never the tokens themselves)."""
    from onramp.service.api_tokens import list_tokens

    rows = _with_store(ctx, list_tokens)
    if json_out:
        output.print_json([r.to_json() for r in rows])
        return
    table = Table(title=f"{len(rows)} API token(s)")
    for col in ("token id", "role", "partner", "label", "created", "revoked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.token_id, r.role, "" if r.partner is None else str(r.partner), r.label or "",
                      f"{r.created_at:%Y-%m-%d %H:%M:%S}", f"{r.revoked_at:%Y-%m-%d %H:%M:%S}" if r.revoked_at else "")
    output.out.print(table)


@tokens_app.command("revoke")
def revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The token ID from `tokens list`.")]) -> None:
    """Revoke a token; requests with it fail from now on."""
    from onramp.service.api_tokens import revoke_token
    from onramp.service.clock import system_clock

    row = _with_store(ctx, lambda con: revoke_token(con, token_id, now=system_clock()))
    output.out.print(f"revoked {row.token_id} at {row.revoked_at:%Y-%m-%d %H:%M:%S}")


@tokens_app.command("admin")
def admin(ctx: typer.Context) -> None:
    """Print the admin token (generated in the data directory on first use, mode 0600)."""
    from onramp.service.api_tokens import admin_token, admin_token_path

    settings = _settings(ctx)
    token, configured = admin_token(settings)
    if configured:
        output.err.print("the admin token is set in the configuration (http.admin_token / ONRAMP_HTTP__ADMIN_TOKEN); not printed")
        return
    output.print_text(token)
    output.err.print(f"admin token from {admin_token_path(settings)}")
