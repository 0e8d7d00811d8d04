"""The embedded defaults (docs/service.md "Start it"): with no configuration at all, Onramp
serves HTTP on 127.0.0.1:8080, takes files from a local drop zone, runs partner FTP on a
loopback port, and writes receipt mail to the outbox directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from onramp.settings import load_settings
from onramp.transports.dropzone import local_zone_root
from onramp.transports.mail import OutboxDirectory, open_transport


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in [n for n in os.environ if n.startswith("ONRAMP_")]:
        monkeypatch.delenv(name)
    return load_settings(data_dir=tmp_path / "data")


def test_http_listens_on_loopback_8080(defaults) -> None:
    assert (defaults.http.host, defaults.http.port) == ("127.0.0.1", 8080)


def test_drop_zones_are_local_folders_of_the_data_directory(defaults) -> None:
    assert defaults.dropzone.kind == "local" and defaults.dropzone.path is None
    data = Path(defaults.data_dir)
    assert local_zone_root(defaults, "prod") == data / "dropzone" / "prod"
    assert local_zone_root(defaults, "beta") == data / "dropzone" / "beta"


def test_partner_ftp_on_a_loopback_port_and_no_sftp(defaults) -> None:
    ftp = defaults.ftp
    assert (ftp.enabled, ftp.host, ftp.port) == (True, "127.0.0.1", 2121)
    assert ftp.beta_port is None and ftp.certfile is None
    assert ftp.sftp_enabled is False


def test_without_an_smtp_host_mail_goes_to_the_outbox(defaults) -> None:
    assert defaults.mail.smtp_host == ""
    transport = open_transport(defaults.mail, defaults.data_dir)
    assert isinstance(transport, OutboxDirectory)
    assert transport.path == Path(defaults.data_dir) / "outbox"


def test_inbound_is_continuous_with_a_30_second_settle_window(defaults) -> None:
    assert (defaults.inbound.schedule, defaults.inbound.settle_seconds) == ("continuous", 30)
