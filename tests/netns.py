"""Another machine, on this one: a network namespace joined to this machine by a veth pair (`ip netns`,
`ip link`; root only), and a TCP relay that publishes a loopback-only service (PostgreSQL) on the veth address,
as a database host's port forward would. A process in the namespace has its own loopback: it reaches this
machine only over the veth addresses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading

import pytest


def require_netns() -> None:
    reason = None
    if shutil.which("ip") is None:
        reason = "iproute2's `ip` is missing"
    elif os.geteuid() != 0:
        reason = "network namespaces need root"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


class Namespace:
    """`name`, reached at `inside` from this machine, which it reaches at `outside` (a /24 of its own)."""

    def __init__(self, name: str, subnet: str = "10.77.0") -> None:
        self.name = name
        self.host_link, self.ns_link = f"{name[:8]}-h", f"{name[:8]}-n"
        self.outside, self.inside = f"{subnet}.1", f"{subnet}.2"

    def _ip(self, *args: str, netns: bool = False) -> None:
        command = ["ip", "netns", "exec", self.name, "ip", *args] if netns else ["ip", *args]
        subprocess.run(command, check=True, capture_output=True, text=True)

    def create(self) -> None:
        self.delete()  # what an earlier run may have left
        self._ip("netns", "add", self.name)
        self._ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.ns_link)
        self._ip("link", "set", self.ns_link, "netns", self.name)
        self._ip("addr", "add", f"{self.outside}/24", "dev", self.host_link)
        self._ip("link", "set", self.host_link, "up")
        self._ip("addr", "add", f"{self.inside}/24", "dev", self.ns_link, netns=True)
        self._ip("link", "set", self.ns_link, "up", netns=True)
        self._ip("link", "set", "lo", "up", netns=True)

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class TcpRelay:
    """Accepts on (host, port) and relays each connection to (target_host, target_port)."""

    def __init__(self, host: str, port: int, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server = socket.create_server((host, port))
        threading.Thread(target=self._accept, daemon=True, name="tcp-relay").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
