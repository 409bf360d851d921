"""Free TCP ports, for everything the platform or its tests start on a port of their own."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now: the OS picks it. A tiny race with other starters
    remains (the port is free when asked, not reserved), which is why starters retry on a clash."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
