"""What the worker needs of a broker, as two small protocols.

``Publisher`` is the confirmed publisher's ``publish`` (``processor.broker.publisher``), and
``IncomingMessage`` the part of aio-pika's ``AbstractIncomingMessage`` that dispatch reads and
settles. The real classes satisfy them as they are (``mypy --strict`` checks it where they are
passed); ``processor.broker.memory`` implements both in memory, for unit tests.
"""

from __future__ import annotations

from typing import Protocol

from aio_pika.abc import HeadersType

# AMQP headers as aio-pika reads and writes them: text keys, values of AMQP's field types.
Headers = HeadersType


class Publisher(Protocol):
    """Publishes one message and returns once the broker confirmed it."""

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
        headers: Headers | None = None, confirm_timeout: float = 5.0,
        content_type: str = "application/json",
    ) -> None:
        """Publish persistently, ``mandatory``, to ``exchange`` (``""``: the queue named
        ``routing_key``); return once confirmed. Raises ``BrokerUnavailable`` when it was not
        confirmed within ``confirm_timeout`` seconds, nacked, returned or the broker is away
        (the same message may be taken later), and ``PublishRefused`` when the broker cannot
        take this message at all (sending it again cannot help)."""
        ...


class IncomingMessage(Protocol):
    """A delivered message, to be settled exactly once: ``ack``, ``nack`` or ``reject``.
    A second settlement raises (aio-pika's ``MessageProcessError``)."""

    @property
    def body(self) -> bytes: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def message_id(self) -> str | None: ...

    @property
    def content_type(self) -> str | None: ...

    async def ack(self) -> None:
        """Done with it: the broker forgets it."""
        ...

    async def nack(self, *, requeue: bool = True) -> None:
        """Not done: back to its queue (``requeue``), else dead-lettered by its queue."""
        ...

    async def reject(self, *, requeue: bool = False) -> None:
        """As ``nack``, but dead-lettered unless ``requeue`` is given."""
        ...
