"""The client side of ``processor.broker.memory``: the messages a queue holds and delivers,
and the publisher a test hands to a ``Dispatcher`` (see that module for the semantics)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aio_pika.exceptions import MessageProcessError

from processor.broker.protocols import Headers
from processor.errors import BrokerUnavailable, PublishRefused

if TYPE_CHECKING:
    from processor.broker.memory import MemoryBroker


@dataclass(frozen=True, slots=True)
class Queued:
    """A message as a queue holds it: what was published, and where from."""

    body: bytes
    headers: dict[str, Any]  # as aio-pika reads them (``Headers``), typed loosely for tests
    message_id: str | None = None
    content_type: str | None = None
    exchange: str = ""
    routing_key: str = ""
    redelivered: bool = False


class MemoryMessage:
    """One delivery of a queued message (an ``IncomingMessage``); settle it exactly once."""

    def __init__(self, broker: MemoryBroker, queue: str, queued: Queued, tag: int) -> None:
        self.queue, self.queued, self.delivery_tag = queue, queued, tag
        self.body = queued.body
        self.headers: dict[str, Any] = copy.deepcopy(queued.headers)  # the consumer's own copy
        self.message_id, self.content_type = queued.message_id, queued.content_type
        self.routing_key, self.redelivered = queued.routing_key, queued.redelivered
        self.settled: str | None = None  # "ack", "nack" or "reject", once settled
        self._broker = broker

    async def ack(self) -> None:
        """Done: the broker forgets the message."""
        self._settle("ack", requeue=False)

    async def nack(self, *, requeue: bool = True) -> None:
        """Back to the head of its queue (``requeue``), else dead-lettered by its queue."""
        self._settle("nack", requeue=requeue)

    async def reject(self, *, requeue: bool = False) -> None:
        """Dead-lettered by its queue, or back to its head with ``requeue``."""
        self._settle("reject", requeue=requeue)

    def _settle(self, how: str, *, requeue: bool) -> None:
        if self.settled is not None:
            raise MessageProcessError("Message already processed", self)
        self.settled = how
        self._broker.settle(self, forget=how == "ack", requeue=requeue)


@dataclass(slots=True)
class _Fault:
    error: BrokerUnavailable | PublishRefused
    exchange: str | None
    times: int


class MemoryPublisher:
    """A ``Publisher`` into a ``MemoryBroker``; ``published`` lists what it queued, in order."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.published: list[Queued] = []
        self._broker = broker
        self._faults: list[_Fault] = []

    def fail(self, error: BrokerUnavailable | PublishRefused, *, exchange: str | None = None,
             times: int = 1) -> None:
        """The next ``times`` publishes (to ``exchange`` only, if given) raise ``error`` and
        queue nothing; faults given earlier are used up first."""
        self._faults.append(_Fault(error, exchange, times))

    async def publish(
        self, exchange: str, routing_key: str, body: bytes, *, message_id: str,
        headers: Headers | None = None, confirm_timeout: float = 5.0,
        content_type: str = "application/json",
    ) -> None:
        """Queue the message and return (the confirm), or raise as ``Publisher`` says."""
        fault = next((f for f in self._faults if f.exchange in (None, exchange)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            raise fault.error
        queued = Queued(bytes(body), copy.deepcopy(dict(headers or {})), message_id,
                        content_type, exchange, routing_key)
        try:
            routed = self._broker.route(exchange, routing_key, queued)
        except KeyError as exc:
            raise BrokerUnavailable(f"broker closed the channel: no exchange {exchange!r}"
                                    ) from exc
        if not routed:
            raise BrokerUnavailable(f"returned: nothing routes {exchange!r} / {routing_key!r}")
        self.published.append(queued)
