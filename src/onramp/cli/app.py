"""The `onramp` command line (SPEC §11.1). Thin: each command calls one service function."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from onramp.cli import output
from onramp.cli.config_cmd import config_app
from onramp.cli.tokens_cmd import tokens_app
from onramp.cli.serve_cmd import serve as serve_command
from onramp.errors import OnrampError, TaxonomyError, UsageError
from onramp.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Onramp: batch audience data onboarding.")
taxonomy_app = typer.Typer(no_args_is_help=True, help="Taxonomy as code: partners, data sources, traits, segments.")
keys_app = typer.Typer(no_args_is_help=True, help="The platform's OpenPGP key.")
app.add_typer(taxonomy_app, name="taxonomy")
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")
app.add_typer(tokens_app, name="tokens")
app.command("serve")(serve_command)

ENVS = ("prod", "beta")


@app.callback()
def main_options(
    ctx: typer.Context,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", envvar="ONRAMP_DATA_DIR", help="Data directory (default ./onramp-data).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", envvar="ONRAMP_CONFIG", help="TOML configuration file.")] = None,
) -> None:
    ctx.obj = {"data_dir": data_dir, "config": config}


def _settings(ctx: typer.Context) -> Settings:
    obj = ctx.obj or {}
    return load_settings(obj.get("config"), data_dir=obj.get("data_dir"))


def _connect(ctx: typer.Context):
    from onramp.store.db import connect

    return connect(_settings(ctx))


# -- taxonomy -------------------------------------------------------------------------------
@taxonomy_app.command("apply")
def taxonomy_apply(ctx: typer.Context, file: Path, json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create or update everything in FILE.yaml (idempotent; invalid file → exit 2, nothing changed)."""
    from onramp.taxonomy.apply import apply_taxonomy
    from onramp.taxonomy.load import load_taxonomy

    if not file.exists():
        raise UsageError(f"{file} does not exist", hint="pass the path of a taxonomy YAML file")
    taxonomy, warnings = load_taxonomy(file.read_text(encoding="utf-8"))
    con = _connect(ctx)
    try:
        summary = apply_taxonomy(con, taxonomy)
    finally:
        con.close()
    if json_out:
        output.print_json({"applied": summary.to_dict(), "warnings": [str(w) for w in warnings]})
        return
    for w in warnings:
        output.err.print(f"[yellow]warning:[/] {w}")
    output.out.print(f"applied {file}: {summary.created} created, {summary.updated} updated, {summary.unchanged} unchanged")


@taxonomy_app.command("export")
def taxonomy_export(ctx: typer.Context) -> None:
    """Print the current taxonomy as YAML in the same schema."""
    from onramp.taxonomy.export import export_taxonomy

    con = _connect(ctx)
    try:
        output.print_text(export_taxonomy(con))
    finally:
        con.close()


# -- ingest / validate ------------------------------------------------------------------------
def _check_files(files: list[Path]) -> None:
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}", hint="pass paths of partner files")


@app.command()
def ingest(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Partner files (data or ID-sync).")],
    partner: Annotated[Optional[int], typer.Option("--partner", help="Uploading partner PID (default: owner of the target data source).")] = None,
    env: Annotated[str, typer.Option("--env", help="prod or beta.")] = "prod",
    reprocess: Annotated[bool, typer.Option("--reprocess", help="Process files already processed.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print receipts as a JSON array.")] = False,
) -> None:
    """Process FILES now, exactly as if the partner had dropped them; print the receipts.

    Exit 0 when every file was accepted, 3 when a file was rejected as a whole, 2 on usage errors.
    """
    from onramp.service.ingest import receipt_text, run_job

    if env not in ENVS:
        raise UsageError(f"unknown environment '{env}'", hint="use --env prod or --env beta")
    _check_files(files)
    settings = _settings(ctx)
    with output.ingest_progress(not json_out and sys.stderr.isatty()) as progress:
        result = run_job(settings, files, partner=partner, env=env, reprocess=reprocess, progress=progress)
    if json_out:
        output.print_json([r.to_json() for r in result.receipts])
    else:
        for r in result.receipts:
            output.print_text(receipt_text(settings, r))
            if r.rejects:
                output.out.print(f"Rejected lines: {Path(settings.data_dir) / r.rejects}\n")
    raise typer.Exit(3 if result.any_rejected else 0)


@app.command()
def validate(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Partner files to check.")],
    partner: Annotated[Optional[int], typer.Option("--partner")] = None,
    env: Annotated[str, typer.Option("--env")] = "prod",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dry run: the receipt INGEST would produce plus every problem line; changes nothing.

    Exit 0 when no problem was found, 1 otherwise.
    """
    from onramp.service.ingest import receipt_text, run_job

    if env not in ENVS:
        raise UsageError(f"unknown environment '{env}'", hint="use --env prod or --env beta")
    _check_files(files)
    settings = _settings(ctx)
    result = run_job(settings, files, partner=partner, env=env, reprocess=True, dry_run=True)
    rejected = [
        {"file": f.name, "line_number": None, "bucket": "rejected_file", "reason": f.reason, "hint": None}
        for r in result.receipts for f in r.files if f.status == "rejected"
    ]
    problems = rejected + result.problems
    if json_out:
        output.print_json({"receipts": [r.to_json() for r in result.receipts], "problems": problems})
    else:
        for r in result.receipts:
            output.print_text(receipt_text(settings, r))
        output.print_problems(problems)
        if not problems:
            output.out.print("[green]no problems found[/]")
    raise typer.Exit(1 if problems else 0)


# -- inspect -------------------------------------------------------------------------------------
@app.command()
def profile(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="DPID:ID", help="0:<uuid> for a device, <dpid>:<id> for a partner ID.")],
    env: Annotated[str, typer.Option("--env")] = "prod",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One profile: its traits, linked IDs and current segments (exit 1 if unknown)."""
    from onramp.service.clock import system_clock
    from onramp.service.profiles import read_profile

    settings = _settings(ctx)
    con = _connect(ctx)
    try:
        view = read_profile(con, ref, env=env, now=system_clock(), link_ttl_days=settings.identity.link_ttl_days,
                            max_hops=settings.identity.max_resolution_hops)
    finally:
        con.close()
    body = {"profile": {"dpid": view.ns, "id": view.id}, "traits": view.traits, "links": view.links, "segments": view.segments}
    if view.merged_traits or view.ns == 0:
        body["merged_traits"] = [{"sid": t["sid"], "data_source": t["data_source"], "realized_at": t["realized_at"],
                                  "expires_at": t["expires_at"], "via": t["profile"]} for t in view.merged_traits]
    if not view.known:
        if json_out:
            output.print_json(body)
        else:
            output.print_error(f"no profile {ref}", "check the DPID and ID; device-level IDs need an ID sync first")
        raise typer.Exit(1)
    if json_out:
        output.print_json(body)
    else:
        output.print_profile(body)


@app.command()
def receipts(
    ctx: typer.Context,
    last: Annotated[int, typer.Option("--last", help="How many receipts, newest first.")] = 10,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Stored receipts, newest first."""
    import json

    con = _connect(ctx)
    try:
        rows = con.execute("SELECT body, text FROM receipts ORDER BY created_at DESC, receipt_id LIMIT ?", [last]).fetchall()
    finally:
        con.close()
    if json_out:
        output.print_json([json.loads(b) for b, _ in rows])
    else:
        for _, text in rows:
            output.print_text(text)


@keys_app.command("export")
def keys_export(ctx: typer.Context) -> None:
    """Print the platform's ASCII-armored OpenPGP public key (created on first use)."""
    from onramp.intake.keys import PlatformKeyring

    settings = _settings(ctx)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    ring = PlatformKeyring(Path(settings.data_dir) / "gnupg")
    ring.ensure_key()
    output.print_text(ring.export_public())


@app.command()
def demo(
    ctx: typer.Context,
    keep_running: Annotated[bool, typer.Option("--keep-running", help="Keep serving after the demo until Ctrl-C.")] = False,
) -> None:
    """Start the service, deliver generated partner files over FTP and the drop zone, sync
    IDs over HTTP, and show the receipts, reject files and profiles."""
    from onramp.service.demo import run_demo

    run_demo(_settings(ctx), keep_running=keep_running)


def main() -> None:
    try:
        app()  # standalone: usage errors exit 2, typer.Exit codes pass through
    except TaxonomyError as exc:
        for p in exc.problems:
            output.print_error(str(p))
        output.err.print(f"{len(exc.problems)} problem(s); nothing was changed")
        sys.exit(2)
    except OnrampError as exc:
        output.print_error(exc.message if not exc.where else f"{exc.where}: {exc.message}", exc.hint)
        sys.exit(2)
