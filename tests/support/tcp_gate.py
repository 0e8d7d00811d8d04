"""A TCP port that can be "down": an outage of the server behind it, at a fixed address.

``Gate(target)`` reserves a loopback port. While closed nothing listens there, so clients
get "connection refused" exactly as when the server is down; ``open()`` starts listening
and pipes each connection to ``target``. Clients keep their endpoint across the outage,
which a server restart on new ports would not allow.
"""

from __future__ import annotations

import socket
import threading

from onramp.testing.seaweed import free_ports


class Gate:
    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = free_ports(1)[0]
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for conn in self._conns:
            conn.close()
        self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
