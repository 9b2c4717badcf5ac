"""Network faults the chaos tests inject: a namespace behind a veth pair that can be black-holed, and a
server that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

_names = itertools.count()

def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=10)
    if done.returncode:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Netns:
    """A network namespace joined to this one by a veth pair on a private /30.

    ``blackhole()`` takes the namespace's end down: packets to ``ns_ip`` are dropped (no RST, no ICMP),
    as when a node or its link vanishes; ``heal()`` brings it back.
    """

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    @classmethod
    def create(cls) -> Netns:
        tag = f"{os.getpid() % 10000}{next(_names)}"
        third, fourth = random.randrange(0, 256), random.randrange(0, 64) * 4
        ns = cls(f"kvchaos{tag}", f"kvh{tag}", f"kvn{tag}", f"10.231.{third}.{fourth + 1}",
                 f"10.231.{third}.{fourth + 2}")
        _ip("netns", "add", ns.name)
        try:
            _ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
            _ip("link", "set", ns.ns_if, "netns", ns.name)
            _ip("addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if)
            _ip("link", "set", ns.host_if, "up")
            ns.exec("addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if)
            ns.exec("link", "set", ns.ns_if, "up")
            ns.exec("link", "set", "lo", "up")
        except AssertionError:
            ns.delete()
            raise
        return ns

    def exec(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside the namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name, *args]

    def blackhole(self) -> None:
        self.exec("link", "set", self.ns_if, "down")

    def heal(self) -> None:
        self.exec("link", "set", self.ns_if, "up")

    def delete(self) -> None:
        # Deleting the namespace destroys its veth end, and with it ours.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False, timeout=10)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False, timeout=10)



class SilentServer:
    """Accepts TCP connections, reads what comes, never answers: a hung vLLM frontend."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = self.sock.accept()
                conn.setblocking(False)
                self._conns.append(conn)
                self.accepted += 1
            for conn in self._conns:
                with contextlib.suppress(BlockingIOError, OSError):
                    conn.recv(65536)  # drain, so the client's request is fully sent and then waits

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self.sock.close()
