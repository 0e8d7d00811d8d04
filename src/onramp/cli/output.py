"""All terminal rendering of the CLI: receipts, problems, profiles, progress."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(type(o))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_default) + "\n")


def print_text(text: str) -> None:
    sys.stdout.write(text)
    if not text.endswith("\n"):
        sys.stdout.write("\n")


def print_problems(problems: list[dict]) -> None:
    if not problems:
        return
    table = Table(title=f"{len(problems)} problem line(s)", show_lines=False)
    for col in ("file", "line", "bucket", "reason", "hint"):
        table.add_column(col, overflow="fold")
    for p in problems:
        table.add_row(p["file"], str(p["line_number"]), p["bucket"], p["reason"], p["hint"] or "")
    out.print(table)


def print_error(message: str, hint: str | None = None) -> None:
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[yellow]hint:[/] {hint}")


def print_profile(view_json: dict) -> None:
    p = view_json["profile"]
    out.print(f"[bold]Profile {p['dpid']}:{p['id']}[/]")
    for title, key in (("Traits", "traits"), ("Traits from linked customer profiles", "merged_traits")):
        rows = view_json.get(key) or []
        if not rows and key == "merged_traits":
            continue
        table = Table(title=title)
        for col in ("sid", "data source", "realized at", "expires at"):
            table.add_column(col)
        for t in rows:
            table.add_row(str(t["sid"]), str(t["data_source"]), _ts(t["realized_at"]), _ts(t["expires_at"]) if t["expires_at"] else "never")
        out.print(table)
    links = Table(title="Linked IDs")
    for col in ("dpid", "id", "last seen"):
        links.add_column(col)
    for link in view_json["links"]:
        links.add_row(str(link["dpid"]), link["id"], _ts(link["last_seen"]))
    out.print(links)
    segs = ", ".join(str(s["sid"]) for s in view_json["segments"]) or "none"
    out.print(f"Segments: {segs}")


def _ts(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else str(v)


@contextmanager
def ingest_progress(enabled: bool):
    """A Rich progress display: one row per file with lines read; no-op when disabled."""
    if not enabled:
        yield None
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[lines]:>12,} lines"),
                        TimeElapsedColumn(), console=err, transient=False)
    tasks: dict[str, int] = {}

    def update(name: str, lines: int, size: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=None, lines=0)
        progress.update(tasks[name], lines=lines)

    with progress:
        yield update
        for task in tasks.values():
            progress.update(task, total=1, completed=1)
