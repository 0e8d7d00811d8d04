"""`onramp serve` as a real child process (tests, demos): start, read what it listens on, stop.

The child logs to a file (not a pipe, which could fill up and block it); ``wait_ready``
parses the addresses from its start-up lines, so tests can give every server port 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_HTTP = re.compile(r"HTTP \(ID sync, REST API\) on (http://\S+)")
_FTP = re.compile(r"(prod|beta) FTPS? on [^:\s]+:(\d+)")
_SFTP = re.compile(r"(prod|beta) SFTP on [^:\s]+:(\d+)")
_READY = "receipt mail "  # the last start-up line (service.serve._log_mode)


class ServeProcess:
    """One ``python -m onramp --data-dir D serve`` child; ``env`` adds ONRAMP_* settings."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, log: Path | None = None,
                 argv: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.log = log or self.data_dir.parent / f"serve-{time.monotonic_ns()}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("ONRAMP_")}
        child_env.update({"ONRAMP_HTTP__PORT": "0", "ONRAMP_FTP__PORT": "0", **(env or {})})
        head = argv or [sys.executable, "-m", "onramp"]
        self._out = open(self.log, "ab")
        self.proc = subprocess.Popen([*head, "--data-dir", str(self.data_dir), "serve"], env=child_env,
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.http_url = ""
        self.ftp_ports: dict[str, int] = {}
        self.sftp_ports: dict[str, int] = {}

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> ServeProcess:
        deadline = time.monotonic() + timeout
        while _READY not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"onramp serve exited with {self.proc.returncode}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"onramp serve did not start in {timeout} s:\n{self.text()}")
            time.sleep(0.05)
        text = self.text()
        self.http_url = _HTTP.search(text).group(1)
        self.ftp_ports = {env: int(port) for env, port in _FTP.findall(text)}
        self.sftp_ports = {env: int(port) for env, port in _SFTP.findall(text)}
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait; returns the exit code (negative: killed by a signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._out.close()
