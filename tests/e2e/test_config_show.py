"""`onramp config show` (issue #3): the effective configuration, secrets masked, through the real CLI."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

SECRETS = ("toml-pass-1", "env-pass-2", "env-token-3", "ftp-pass-4")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "onramp.toml"
    path.write_text(
        '[mail]\nsmtp_host = "mail.example"\nsmtp_port = 25\nusername = "onramp"\npassword = "toml-pass-1"\n'
        '[platform]\nname = "Acme Onramp"\n',
        encoding="utf-8",
    )
    return path


def test_effective_configuration_with_secrets_masked(onramp, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONRAMP_MAIL__PASSWORD", "env-pass-2")  # environment beats the TOML file
    monkeypatch.setenv("ONRAMP_MAIL__SMTP_PORT", "2525")
    monkeypatch.setenv("ONRAMP_HTTP__ADMIN_TOKEN", "env-token-3")
    monkeypatch.setenv("ONRAMP_FTP__ACCOUNTS", '{"acme": "ftp-pass-4"}')
    res = onramp("--config", str(config_file), "config", "show")
    assert res.code == 0, res.stderr
    for secret in SECRETS:
        assert secret not in res.stdout and secret not in res.stderr
    shown = tomllib.loads(res.stdout)
    assert shown["data_dir"] == str(onramp.data_dir)
    assert shown["mail"]["smtp_host"] == "mail.example" and shown["mail"]["smtp_port"] == 2525
    assert shown["mail"]["username"] == "onramp" and shown["mail"]["password"] == "********"
    assert shown["http"]["admin_token"] == "********"
    assert shown["ftp"]["accounts"] == {"acme": "********"}
    assert shown["platform"]["name"] == "Acme Onramp"
    assert shown["dropzone"]["s3_secret_key"] == "", "an unset secret shows as empty, not masked"
    assert shown["inbound"]["max_lines_per_user"] == 200  # defaults are part of the effective configuration

    as_json = onramp("--config", str(config_file), "config", "show", "--json")
    assert as_json.code == 0 and as_json.json()["mail"] == {**shown["mail"], "ca_file": None}
    assert not any(secret in as_json.stdout for secret in SECRETS)


def test_onramp_config_names_the_file_when_no_option_does(onramp, config_file: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONRAMP_CONFIG", str(config_file))
    shown = tomllib.loads(onramp("config", "show", check=True).stdout)
    assert shown["mail"]["smtp_host"] == "mail.example" and shown["platform"]["name"] == "Acme Onramp"

    other = tmp_path / "other.toml"
    other.write_text('[platform]\nname = "From --config"\n', encoding="utf-8")
    overridden = tomllib.loads(onramp("--config", str(other), "config", "show", check=True).stdout)
    assert overridden["platform"]["name"] == "From --config", "--config beats ONRAMP_CONFIG"
    assert overridden["mail"]["smtp_host"] == "", "only one file is read"


def test_missing_config_file_is_a_usage_error(onramp, tmp_path: Path) -> None:
    res = onramp("--config", str(tmp_path / "nope.toml"), "config", "show")
    assert res.code == 2
    assert "does not exist" in res.stderr and "hint" in res.stderr


def test_a_misspelt_key_is_refused_with_the_right_name(onramp, tmp_path: Path) -> None:
    """A typo inside a section used to be ignored silently (the default applied instead)."""
    path = tmp_path / "onramp.toml"
    path.write_text('[inbound]\nsettle_secs = 5\n[mail]\nsmtp_port = "twenty-five"\n', encoding="utf-8")
    res = onramp("--config", str(path), "config", "show")
    assert res.code == 2
    assert f"configuration {path}" in res.stderr
    assert "inbound.settle_secs: unknown setting" in res.stderr
    assert "did you mean inbound.settle_seconds?" in res.stderr
    assert "mail.smtp_port:" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_retired_keys_are_still_accepted(onramp, tmp_path: Path) -> None:
    """inbound.queue_read_max and inbound.max_batches never changed anything (docs/decisions.md)."""
    path = tmp_path / "onramp.toml"
    path.write_text("[inbound]\nqueue_read_max = 119000\nmax_batches = 3\nsettle_seconds = 7\n", encoding="utf-8")
    res = onramp("--config", str(path), "config", "show")
    assert res.code == 0, res.stderr
    shown = tomllib.loads(res.stdout)["inbound"]
    assert shown["settle_seconds"] == 7 and "queue_read_max" not in shown and "max_batches" not in shown
