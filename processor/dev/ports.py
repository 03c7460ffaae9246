"""Where things listen on this machine: a port to take, and whether something answers there.

``quiet_port()`` is a free port below the ephemeral range, for a server that must find it free
again after a restart (a private RabbitMQ node, a private Redis); ``launcher.free_port`` is any
port free now, for one that keeps it. ``listening(port)`` and ``answers(amqp_url)`` are quick
TCP checks: something accepts connections there, whatever it is.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from urllib.parse import urlsplit

from processor.broker.connect import parse
from processor.errors import ConfigError

_WELL_KNOWN = {4369, 5671, 5672, 15672, 25672, 35672, 6379, 8080, 8090, 8091, 9100}


def answers(urls: str, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections at the host and port of an AMQP URL of ``urls``
    (one, or several as ``AMQP_URL`` lists them); False for what is not such a list."""
    try:
        listed = parse(urls)
    except ConfigError:
        return False
    return any(_answers(url, timeout) for url in listed)


def _answers(url: str, timeout: float) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    except ValueError:
        return False
    return listening(port, parts.hostname or "localhost", timeout)


def listening(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """Something listens on ``host:port``. Not a TCP self-connection: a port of the ephemeral
    range with no listener can be "accepted" by the connecting socket itself."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as probe:
            return bool(probe.getsockname() != probe.getpeername())
    except OSError:
        return False


def quiet_port() -> int:
    """A free port below the ephemeral range. A server's port must stay free while it is down
    (a restart): in the ephemeral range anyone binding port 0 may take it meanwhile.
    ``OSError`` when none is found."""
    low = _ephemeral_low()
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randrange(max(1024, low - 12000), low)
        if port not in _WELL_KNOWN and _bindable(port):
            return port
    raise OSError("no free port below the ephemeral range")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # IANA's, as macOS and the BSDs use
