"""A study-wide lock over TCP, served beside Optuna's gRPC storage proxy (`automl storage-proxy`), for workers
that reach the study only through the proxy (no database connection for PostgreSQL's advisory lock).

The protocol is one line each way: the client sends `LOCK <name>\\n` and holds the lock from the server's
`OK\\n` until it sends `UNLOCK\\n` or its connection closes: a worker that dies holding the lock frees it.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

CONNECT_SECONDS = 30.0


class _Locks:
    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.locks: dict[str, threading.Lock] = {}

    def get(self, name: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(name, threading.Lock())


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode().strip()
        if not line.startswith("LOCK ") or len(line) > 300:
            self.wfile.write(b"ERROR expected: LOCK <name>\n")
            return
        lock = self.server.locks.get(line[5:])  # type: ignore[attr-defined]
        with lock:
            self.wfile.write(b"OK\n")
            self.wfile.flush()
            self.rfile.readline()  # UNLOCK, or the connection closed


class LockServer(socketserver.ThreadingTCPServer):
    """Named locks for any number of clients, one thread per held or waiting lock."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int) -> None:
        super().__init__((host, port), _Handler)
        self.locks = _Locks()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="automl-lock-server", daemon=True)
        thread.start()
        return thread


@contextlib.contextmanager
def remote_lock(host: str, port: int, name: str) -> Iterator[None]:
    """Hold the lock `name` of the lock server at host:port for the `with` block."""
    with socket.create_connection((host, port), timeout=CONNECT_SECONDS) as connection:
        connection.settimeout(None)  # waiting for the lock may take as long as the holders take
        connection.sendall(f"LOCK {name}\n".encode())
        reply = connection.makefile("rb").readline().decode().strip()
        if reply != "OK":
            raise ConnectionError(f"the lock server at {host}:{port} refused the lock: {reply or 'no answer'}")
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                connection.sendall(b"UNLOCK\n")


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port that, like the one after it, nothing listens on now: for `automl storage-proxy --port`."""
    while True:
        with socket.socket() as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            try:
                with socket.socket() as second:
                    second.bind((host, port + 1))
                return port
            except OSError:
                continue
