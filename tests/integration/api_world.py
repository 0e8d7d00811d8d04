"""A data directory with two partners and a running REST API server (test_rest_api, test_api_fuzz).

Two partners share one device: acme (pid 7, data source 21) and other (pid 9, data source
55); each has one receipt with a reject file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from onramp.server.app import create_app
from onramp.service.api_tokens import admin_token, create_token
from onramp.service.ingest import run_job
from onramp.settings import Settings, load_settings
from onramp.store.db import connect
from onramp.taxonomy.apply import apply_taxonomy
from onramp.taxonomy.load import load_taxonomy
from onramp.testing.uvicorn_thread import serve_in_thread
from tests.conftest import write

NOW = datetime(2026, 11, 22, 10, 0, 0)
UUID = "07955261652886032950143702505894272138"  # the device both partners synced

TAXONOMY = """
partners:
  - {pid: 7, name: acme, contacts: [ops@acme.example]}
  - {pid: 9, name: other}
data_sources:
  - {dpid: 21, owner: 7, name: Acme cookies, id_type: cookie, inbound_id_type: customer_id}
  - {dpid: 55, owner: 9, name: Other cookies, id_type: cookie, inbound_id_type: customer_id, notify: [data@other.example]}
traits:
  - {sid: 101, name: acme trait, data_source: 21, type: onboarded}
  - {sid: 103, name: other trait, data_source: 55, type: onboarded}
segments:
  - {sid: 5001, name: acme segment, owner: 7, expression: '101T'}
  - {sid: 5002, name: other segment, owner: 9, expression: '103T'}
"""


def make_app(settings: Settings) -> FastAPI:
    return create_app(settings)


class World:
    """A data directory with two partners' receipts, a running server, and tokens."""

    def __init__(self, settings: Settings, base_url: str, drop: Path):
        self.settings = settings
        self.base_url = base_url
        self.drop = drop
        self.receipts: dict[int, dict] = {}
        self.files: dict[int, Path] = {}
        self.tokens: dict[str, str] = {}

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def get(self, who: str | None, path: str, **kw) -> httpx.Response:
        with self.client(who) as c:
            return c.get(path, **kw)

    def send(self, who: str | None, method: str, path: str, **kw) -> httpx.Response:
        with self.client(who) as c:
            return c.request(method, path, **kw)


@contextmanager
def built_world(root: Path) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ONRAMP_NOW", "2026-11-22T10:00:00Z")
        mp.delenv("ONRAMP_HTTP__ADMIN_TOKEN", raising=False)
        settings = load_settings(data_dir=root / "data")
        drop = root / "drop"
        drop.mkdir()
        con = connect(settings)
        try:
            apply_taxonomy(con, load_taxonomy(TAXONOMY)[0], now=NOW)
            tokens = {
                "acme": create_token(con, role="partner", partner=7, label="acme", now=NOW)[1],
                "other": create_token(con, role="partner", partner=9, label="other", now=NOW)[1],
                "metrics": create_token(con, role="metrics", partner=None, label="prometheus", now=NOW)[1],
                "admin": admin_token(settings)[0],
            }
        finally:
            con.close()
        clock = lambda: NOW  # noqa: E731
        run_job(settings, [write(drop, "adobe_id_0_21_1699999000.sync", [f"{UUID}\tu1"])], clock=clock)
        run_job(settings, [write(drop, "adobe_id_0_55_1699999000.sync", [f"{UUID}\tx1"])], clock=clock)
        with serve_in_thread(make_app(settings)) as base_url:
            w = World(settings, base_url, drop)
            w.tokens.update(tokens)
            for pid, (dpid, sid, uid) in {7: (21, 101, "u1"), 9: (55, 103, "x1")}.items():
                f = write(drop, f"ftp_dpm_{dpid}_1700000000.sync", [f"{uid}\td_sid={sid}", "broken line without tab"])
                (receipt,) = run_job(settings, [f], clock=clock).receipts
                w.receipts[pid], w.files[pid] = receipt.to_json(), f
            yield w
