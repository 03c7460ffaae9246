"""A vhost of the local broker that refuses the benchmark's user: the broker up, us shut out.

The broker is never stopped or alarmed (others' tests share it): our ingress is pointed at
``URL``, a vhost where the user of ``bench.broker.URL`` has no permissions, so every
connection it opens is closed at once, as when its broker is away. ``grant`` lets the user in
(the ingress's next reconnection succeeds), ``shut_out`` empties what was forwarded meanwhile
and takes the permissions away again. ``create`` starts from an empty vhost, ``delete``
removes it. Everything goes through ``rabbitmqctl`` (about a second a call), as
``bench.broker.ensure_vhost`` does.
"""

from __future__ import annotations

import subprocess
from urllib.parse import quote, urlparse

import aio_pika

from bench import broker

VHOST = f"{broker.vhost_name()}-refusing"
_PARTS = urlparse(broker.URL)
USER = _PARTS.username or "guest"
URL = _PARTS._replace(path="/" + quote(VHOST, safe="")).geturl()


def create() -> None:
    """An empty ``VHOST`` with no permissions (one left by an interrupted run is replaced)."""
    delete()
    _ctl("add_vhost", VHOST)


def delete() -> None:
    """Remove ``VHOST`` and everything in it; nothing if it does not exist."""
    if VHOST in _ctl("list_vhosts").split():
        _ctl("delete_vhost", VHOST)


def grant() -> None:
    """Let ``USER`` in (configure, write, read on everything in ``VHOST``)."""
    _ctl("set_permissions", "-p", VHOST, USER, ".*", ".*", ".*")


async def shut_out() -> None:
    """Purge every queue of ``VHOST`` (the user must still be let in), then take the user's
    permissions away: the state ``create`` leaves, the topology kept."""
    listed = [n for n in _ctl("list_queues", "-p", VHOST, "name").split() if n != "name"]
    if listed:
        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            for name in listed:
                await (await channel.get_queue(name)).purge()
    _ctl("clear_permissions", "-p", VHOST, USER)


def _ctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          check=True).stdout
