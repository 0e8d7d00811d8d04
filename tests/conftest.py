"""Shared fixtures: a data directory with a taxonomy, and the real `onramp` CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# By default the property tests run on a fixed seed (reproducible: CI never flakes);
# HYPOTHESIS_PROFILE=dev draws fresh random examples on every run, to hunt for new bugs.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("dev", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


class Onramp:
    """Runs `python -m onramp --data-dir D ...` like a user would."""

    def __init__(self, data_dir: Path, now: str | None = None):
        self.data_dir = data_dir
        self.now = now

    def __call__(self, *args: str, now: str | None = None, check: bool = False) -> CliResult:
        env = dict(os.environ)
        env.pop("ONRAMP_DATA_DIR", None)
        stamp = now or self.now
        if stamp:
            env["ONRAMP_NOW"] = stamp
        proc = subprocess.run(
            [sys.executable, "-m", "onramp", "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, env=env, timeout=300,
        )
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"onramp {' '.join(args)} → {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return result

    def apply(self, yaml_text: str) -> None:
        path = self.data_dir.parent / f"taxonomy-{abs(hash(yaml_text))}.yaml"
        path.write_text(textwrap.dedent(yaml_text))
        self("taxonomy", "apply", str(path), check=True)


@pytest.fixture
def onramp(tmp_path: Path) -> Onramp:
    return Onramp(tmp_path / "data", now="2026-11-22T10:00:00Z")


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    d = tmp_path / "drop"
    d.mkdir()
    return d


def write(drop: Path, name: str, lines: list[str], *, crlf: bool = False) -> Path:
    path = drop / name
    body = ("\r\n" if crlf else "\n").join(lines) + "\n"
    if name.endswith(".gz"):
        import gzip

        path.write_bytes(gzip.compress(body.encode()))
    else:
        path.write_bytes(body.encode())
    return path
