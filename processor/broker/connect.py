"""Connecting to one of several RabbitMQ nodes: the one way every process opens a connection.

``AMQP_URL`` names one broker address or several, as full URLs separated by commas::

    amqp://user:pass@rabbit-0:5672/prod,amqp://user:pass@rabbit-1:5672/prod

Each URL stands alone (its own credentials, TLS options, query), but every address must be
the same broker's: one scheme (never ``amqps`` falling back to ``amqp``) and one vhost. A
shorthand listing hosts inside one URL (``amqp://u:p@h1,h2/v``) is refused with a
``ConfigError`` that says how to write it: it would be a second syntax for the same thing,
and a comma inside a host is otherwise silently a host name that never resolves. The list
is split only where a comma is followed by ``amqp://`` or ``amqps://``, so a comma inside a
password stays part of it.

``connect`` tries the addresses in order, each for at most ``attempt_timeout`` seconds,
starting where the ``Addresses`` it is given says: at the last address that answered, else
after the last one that failed or whose connection was lost. A long-lived process keeps one
``Addresses`` for its reconnect loop, so that after losing a node it tries another one first
instead of waiting on the one that went away. A one-shot command may pass the string.

The address chosen is logged as scheme, host, port and vhost only (``shown``); so are failures.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

import aio_pika
from aio_pika.abc import AbstractConnection
from structlog.typing import FilteringBoundLogger

from processor.errors import ConfigError

__all__ = ["Addresses", "connect", "parse", "shown"]

_SEPARATOR = re.compile(r"\s*,\s*(?=amqps?://)", re.IGNORECASE)
_SCHEMES = ("amqp", "amqps")


def parse(urls: str) -> tuple[str, ...]:
    """The broker URLs of ``urls`` (one URL, or several separated by commas), in order.
    Raises ``ConfigError``, naming no credentials, for an empty list, a scheme other than
    ``amqp``/``amqps``, a URL without a host or with a bad port, hosts listed inside one URL,
    an ``@`` after the host (a password with an unencoded ``/``, ``?`` or ``#``), or a list
    that mixes ``amqp`` with ``amqps`` or vhosts (a failover must not fall back to plain text,
    nor split traffic between vhosts)."""
    listed = tuple(url for url in _SEPARATOR.split(urls.strip()) if url)
    if not listed:
        raise ConfigError("AMQP_URL is empty: give at least one amqp:// URL")
    for url in listed:
        _check(url)
    kinds = {(urlsplit(url).scheme.lower(), urlsplit(url).path or "/") for url in listed}
    if len(kinds) > 1:
        raise ConfigError("AMQP_URL: its addresses mix amqp:// with amqps:// or name "
                          "different vhosts; every address must be the same broker's")
    return listed


def _check(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError(f"AMQP_URL: {shown(url)!r} is not an amqp:// or amqps:// URL")
    if "@" in parts.path + parts.query + parts.fragment:
        raise ConfigError("AMQP_URL: an address has '@' after its host; percent-encode '/', "
                          "'?', '#' and '@' in its user and password")
    host = parts.netloc.rpartition("@")[2]
    if "," in host:
        raise ConfigError(f"AMQP_URL: {shown(url)!r} lists hosts inside one URL; write each "
                          "as a full URL, separated by commas (amqp://u:p@h1/v,amqp://u:p@h2/v)")
    if not parts.hostname:
        raise ConfigError(f"AMQP_URL: {shown(url)!r} names no host")
    try:
        parts.port  # noqa: B018 (urllib checks the range when it is read)
    except ValueError:
        raise ConfigError(f"AMQP_URL: {shown(url)!r} has a port out of range") from None


def shown(url: str) -> str:
    """``url`` as it may be logged or said: scheme, host, port and vhost, nothing else (no
    user, password or query). A URL that does not parse cleanly (an ``@`` after its host:
    an unencoded password) is not shown at all."""
    parts = urlsplit(url)
    if "@" in parts.path + parts.query + parts.fragment:
        return f"{parts.scheme}://(hidden: it has '@' after its host)"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ":(out of range)"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


class Addresses:
    """The addresses of one ``AMQP_URL``, and which one a connection attempt starts at.

    Not shared between processes, nor meant to be: each process learns for itself which
    node answers it."""

    def __init__(self, urls: str) -> None:
        self.urls = parse(urls)
        self._start = 0

    def __len__(self) -> int:
        return len(self.urls)

    def order(self) -> list[str]:
        """Every address once, the one to try first at the head."""
        return [*self.urls[self._start:], *self.urls[:self._start]]

    def answered(self, url: str) -> None:
        """``url`` took a connection: the next attempt starts there."""
        self._start = self.urls.index(url)

    def failed(self, url: str) -> None:
        """``url`` refused or timed out: the next attempt starts after it."""
        self._start = (self.urls.index(url) + 1) % len(self.urls)

    def lost(self, url: str) -> None:
        """A connection to ``url`` closed: the next attempt starts after it, unless another
        address has answered since (an old connection's close must not undo a new one)."""
        if self.urls[self._start] == url:
            self.failed(url)


async def connect(
    urls: str | Addresses, *, attempt_timeout: float, name: str,
    log: FilteringBoundLogger | None = None,
) -> AbstractConnection:
    """A connection to the first of ``urls`` that answers, tried in ``Addresses.order``,
    each for at most ``attempt_timeout`` seconds (so at most that times their number in all).

    ``name`` is the connection's name in the broker's management UI ("zenoti-events
    <name>"); ``log`` gets a line per address that failed and one for the address chosen
    (None: no lines, for the dev console that owns the terminal). When the connection
    closes, its address is marked lost, so a reconnection tries another first. Raises
    ``ConfigError`` for a malformed ``urls``; when no address answers, the last address's
    error (an ``OSError``, ``TimeoutError`` or aio-pika ``AMQPError``), with a note naming
    each address and why."""
    addresses = urls if isinstance(urls, Addresses) else Addresses(urls)
    errors: list[str] = []
    for url in addresses.order():
        try:
            connection = await _open(url, attempt_timeout, name)
        except (OSError, aio_pika.exceptions.AMQPError) as exc:  # TimeoutError is an OSError
            addresses.failed(url)
            errors.append(f"{shown(url)}: {exc!r}")
            if log is not None:
                log.warning("broker.address_failed", address=shown(url), error=repr(exc))
            if len(errors) == len(addresses):
                exc.add_note("no broker address answered: " + "; ".join(errors))
                raise
            continue
        addresses.answered(url)
        connection.close_callbacks.add(lambda *_, url=url: addresses.lost(url))
        if log is not None:
            log.info("broker.address_chosen", address=shown(url), tried=len(errors) + 1,
                     of=len(addresses))
        return connection
    raise AssertionError("unreachable: Addresses is never empty")


async def _open(url: str, seconds: float, name: str) -> AbstractConnection:
    # aiormq's own timeout bounds the TCP connect; this one bounds the whole handshake too
    # (a node that accepts but never answers, as one still starting does).
    async with asyncio.timeout(seconds):
        return await _handshake(url, seconds, name)


async def _handshake(url: str, seconds: float, name: str) -> AbstractConnection:
    """``aio_pika.connect``, but a failed attempt's connection is closed here, in the loop:
    aio-pika's ``__del__`` would otherwise schedule the close wherever it is collected (in
    another thread: a never-awaited coroutine)."""
    connection = aio_pika.Connection(aio_pika.connection.make_url(
        url, client_properties={"connection_name": f"zenoti-events {name}"}))
    try:
        await connection.connect(timeout=seconds)
    except BaseException:
        await asyncio.shield(_close_quietly(connection))
        raise
    return connection


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        async with asyncio.timeout(5):
            await connection.close()
    except Exception:  # the attempt already failed: its own error is the one raised
        pass
