"""Free loopback ports for tests and local clusters."""

from __future__ import annotations

import collections
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000  # below: ports that well-known services tend to use
RECENT = 4096  # ports handed out lately, not handed out again

_recent: collections.deque[int] = collections.deque(maxlen=RECENT)


def _ephemeral_low() -> int:
    """The lowest port the kernel gives outgoing connections (0 where unknown)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, for a server to bind soon (bind to port 0
    where a server allows it).

    Chosen below the kernel's ephemeral range where there is room: every outgoing
    connection of any process takes its local port from that range, and one could take
    this port between now and the server's bind (an etcd member of a test cluster once
    failed so). Never one this process handed out lately (two members of one cluster
    must not get the same port)."""
    low = _ephemeral_low()
    for _ in range(200):
        if low - LOWEST >= 1000:
            port = random.randrange(LOWEST, low)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        if port not in _recent and _bindable(host, port):
            _recent.append(port)
            return port
    raise OSError(f"no free port found on {host}")
