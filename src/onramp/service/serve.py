"""`onramp serve`: the long-running platform in one process (DESIGN §1, issue #3).

One process runs, each in its own thread: the watcher (drop zones → fair queue → jobs,
receipts written back, receipt mail delivered, SPEC §3.10, §6.1), the partner FTP server
(and SFTP when enabled, §3.1) of each environment that has one, and the HTTP server
(ID sync and REST API, §2.1). Everything shares the data directory; the store is opened
only for a unit of work (ADR 0001), so CLI commands keep working meanwhile.

One process, not several, so that ``kill -9`` takes everything down together: no
orphaned server keeps a port or the store after a crash, and a restart finds the
in-flight journal and settles it (``service.inflight``). SIGTERM or SIGINT stop it
cleanly: the job under way finishes, the servers stop, then the process exits; a second
signal exits at once, which is safe for the same reason a crash is.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onramp.errors import UsageError
from onramp.settings import Settings

log = logging.getLogger("onramp.serve")

STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class Running:
    """What a started service listens on (also what it logs at start)."""

    http_url: str = ""
    ftp_ports: dict[str, int] = field(default_factory=dict)  # env -> port
    sftp_ports: dict[str, int] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)  # env -> where the drop zone is


def configure_logging(level: int = logging.INFO) -> None:
    """Plain lines on stderr: operators and `journalctl` read them, tests parse the ports.

    Onramp's own records from ``level`` up; libraries' (uvicorn, pyftpdlib, boto) only
    warnings and errors, in the same format.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("onramp").setLevel(level)


def serve(settings: Settings, *, stop: threading.Event | None = None, on_ready: Callable[[Running], None] | None = None) -> int:
    """Run the platform until ``stop`` is set or SIGTERM/SIGINT arrives; returns the exit code.

    Signal handlers are installed only when called from the main thread (the CLI);
    embedded callers (tests, `onramp demo`) pass their own ``stop``.
    """
    from onramp.service.turns import StoreTurns
    from onramp.service.watcher import PartnerFolders, Watcher, check_schedule
    from onramp.store.db import connect
    from onramp.transports.dropzone import ENVIRONMENTS, open_dropzone

    stop = stop or threading.Event()
    check_schedule(settings.inbound.schedule)  # a bad cron expression fails now, not in a thread
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    connect(settings).close()  # create or migrate the store before anything uses it
    restore = _install_signal_handlers(stop)
    running = Running()
    try:
        with ExitStack() as stack:
            partners = PartnerFolders(settings)
            zones = [open_dropzone(settings, env, partners) for env in ENVIRONMENTS]
            for zone in zones:
                running.zones[zone.env] = _where(zone)
                log.info("%s drop zone: %s", zone.env, running.zones[zone.env])
            _start_partner_servers(settings, {z.env: z for z in zones}, stack, running)
            # Jobs run side by side; the ID-sync loader (a child process) and API reprocesses
            # take the store alone (service.turns).
            turns = StoreTurns()
            http = _HttpThread(settings, turns)
            running.http_url = http.start()
            stack.callback(http.stop)
            log.info("HTTP (ID sync, REST API) on %s", running.http_url)
            watcher = Watcher(settings, zones, turns=turns)
            worker = threading.Thread(target=watcher.run, args=(stop,), name="onramp-watcher", daemon=True)
            worker.start()
            stack.callback(_join, worker, "watcher")
            _log_mode(settings)
            if on_ready is not None:
                on_ready(running)
            code = _wait(stop, {"watcher": worker, "HTTP server": http.thread})
            log.info("stopping")
        log.info("stopped")
        return code
    finally:
        restore()


def _wait(stop: threading.Event, threads: dict[str, threading.Thread]) -> int:
    """Block until asked to stop (0) or until a part dies on its own (1: the supervisor restarts us)."""
    while not stop.wait(0.5):
        for name, thread in threads.items():
            if not thread.is_alive():
                log.error("the %s stopped unexpectedly; shutting down", name)
                stop.set()
                return 1
    return 0


def _join(thread: threading.Thread, name: str) -> None:
    thread.join(STOP_TIMEOUT_SECONDS)
    if thread.is_alive():
        log.warning("the %s did not stop within %.0f s (a long job is still running)", name, STOP_TIMEOUT_SECONDS)
        thread.join()


def _start_partner_servers(settings: Settings, zones: dict, stack: ExitStack, running: Running) -> None:
    """FTP (and SFTP) per environment. Partners' homes are their folders of the local zone;
    with an S3 zone they are a staging area and finished uploads are copied to S3 (§3.1)."""
    from onramp.transports.dropzone import local_zone_root
    from onramp.transports.partner_homes import accounts_from_settings

    ftp = settings.ftp
    if not (ftp.enabled or ftp.sftp_enabled):
        return
    accounts = accounts_from_settings(ftp)
    if not accounts:
        log.warning("no partner FTP/SFTP accounts configured: set ftp.accounts (login = partner name)")
    ports = {"prod": (ftp.port, ftp.sftp_port), "beta": (ftp.beta_port, ftp.sftp_beta_port)}
    for env, (ftp_port, sftp_port) in ports.items():
        root = local_zone_root(settings, env)
        forward = getattr(zones[env], "receive", None) if settings.dropzone.kind != "local" else None
        if ftp.enabled and ftp_port is not None:
            from onramp.transports.ftp_server import start_ftp_server

            handle = stack.enter_context(start_ftp_server(settings, root, accounts, port=ftp_port, forward=forward))
            running.ftp_ports[env] = handle.port
            log.info("%s FTP%s on %s:%d", env, "S" if ftp.certfile else "", ftp.host, handle.port)
        if ftp.sftp_enabled and sftp_port is not None:
            from onramp.transports.sftp_server import start_sftp_server

            handle = stack.enter_context(start_sftp_server(settings, root, accounts, port=sftp_port, forward=forward))
            running.sftp_ports[env] = handle.port
            log.info("%s SFTP on %s:%d", env, ftp.host, handle.port)


class _HttpThread:
    """uvicorn in a thread, on a socket bound here: port 0 works and the real port is known."""

    def __init__(self, settings: Settings, store_lock: Any = None):
        self.settings = settings
        self.store_lock = store_lock
        self.thread = threading.Thread(target=self._run, name="onramp-http", daemon=True)
        self._server: Any = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    def start(self) -> str:
        import uvicorn

        from onramp.server.app import create_app

        host, port = self.settings.http.host, self.settings.http.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                             hint="stop whatever uses that port, or set http.port (ONRAMP_HTTP__PORT)") from None
        self._sock = sock
        # Same server options as `run_http`: one worker (one ID-sync log writer), no access log.
        config = uvicorn.Config(create_app(self.settings, store_lock=self.store_lock), workers=1, access_log=False, log_level="warning",
                                server_header=False, lifespan="on", log_config=None, timeout_graceful_shutdown=10)
        self._server = uvicorn.Server(config)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise UsageError(f"the HTTP server did not start: {self._error or 'timeout'}",
                                 hint="see the log above for the cause")
            time.sleep(0.02)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        return f"http://{shown}:{bound_port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start() or by the supervisor loop
            self._error = exc
            log.exception("HTTP server failed")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(STOP_TIMEOUT_SECONDS)
        if self._sock is not None:
            self._sock.close()


def _install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("second %s: exiting at once (uploads and jobs are crash-safe)", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: finishing the job under way, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in previous.items():
            signal.signal(s, h)

    return restore


def _where(zone: object) -> str:
    root = getattr(zone, "root", None)
    if root is not None:
        return str(Path(root).resolve())
    bucket, prefix = getattr(zone, "bucket", "?"), getattr(zone, "prefix", "")
    return f"s3://{bucket}/{prefix}"


def _log_mode(settings: Settings) -> None:
    inbound, mail = settings.inbound, settings.mail
    if inbound.schedule.strip().lower() == "continuous":
        log.info("inbound: continuous; a logical file is processed %d s after its last change, "
                 "or when its .info file lists every part", inbound.settle_seconds)
    else:
        log.info("inbound: on schedule %r (UTC)", inbound.schedule)
    if mail.smtp_host:
        log.info("receipt mail via SMTP %s:%d", mail.smtp_host, mail.smtp_port)
    else:
        log.info("receipt mail written to %s (no mail.smtp_host)", (Path(settings.data_dir) / "outbox").resolve())
