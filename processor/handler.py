"""The handler contract: what a plugin implements and what it is given.

A handler is a class registered under the entry-point group ``zenoti_events.handlers``. The
worker makes one instance per process at start-up (no arguments) and calls ``handle`` once
per message, concurrently up to the prefetch. ``handle`` returns normally on success; its
exceptions decide the message's fate (see ``processor.errors``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from processor.zenoti_api import ZenotiApi
from schemas.envelope import Envelope

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

ENTRY_POINT_GROUP = "zenoti_events.handlers"

DataT = TypeVar("DataT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Event(Generic[DataT]):
    """One webhook event, its ``data`` validated by the handler's schema."""

    key: str  # event_id, else id, else a hash of the body: stable across redeliveries
    event_type: str
    tenant: str
    data: DataT
    event_timestamp: datetime | None = None
    delivery_id: str | None = None  # the envelope's ``id``
    received_at: datetime | None = None
    attempt: int = 1
    source: Envelope | None = field(default=None, repr=False)  # as parsed from the delivery

    @property
    def envelope(self) -> dict[str, Any]:
        """The whole envelope as JSON values, unknown fields included; made on use, since
        most handlers never need it (it cost a dump per message)."""
        return {} if self.source is None else self.source.model_dump(mode="json")


PublishFn = Callable[[str, BaseModel], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Context:
    """What a handler may use. ``zenoti`` is the tenant's Zenoti API for this event
    (``ZenotiApi``). ``publish(name, model)`` sends the enriched event to the
    ``zenoti.enriched`` exchange with routing key ``name`` and returns once the broker
    confirmed it; its message id is derived from the event key and handler name, so a
    consumer can de-duplicate. ``log`` is a structlog logger; the worker binds the message's
    ids (handler, event id and type, tenant) to every line logged while it is handled
    (``processor.logs.MessageFields``, one context variable: they are not in structlog's
    ``get_contextvars()``), so a handler logs only what it adds."""

    zenoti: ZenotiApi
    log: FilteringBoundLogger
    publish: PublishFn


@runtime_checkable
class Handler(Protocol):
    """Handles the event types it names, validating ``data`` with ``schema``.

    A handler may also declare ``outputs`` (``Publishes``): the output models it publishes.
    Optional, so that plugins written before it keep loading; checked when present, and what
    ``zenoti-events schemas`` and ``asyncapi`` describe (``docs/contract.md``)."""

    name: ClassVar[str]  # "membership-freeze": its queue is zenoti.h.membership-freeze
    event_types: ClassVar[tuple[str, ...]]  # exact Zenoti strings; settings may override
    schema: ClassVar[type[BaseModel]]  # the model of the envelope's ``data``

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Enrich ``event`` and ``ctx.publish`` the result; raise to retry or dead-letter."""
        ...


@runtime_checkable
class Publishes(Protocol):
    """A handler that declares its outputs: each a pydantic model with the class attributes
    ``event_name`` (a routing key, stable across versions) and ``version`` (an int from 1),
    whose JSON carries ``schema_version`` (``schemas.enriched.Output`` gives all three)."""

    outputs: ClassVar[tuple[type[BaseModel], ...]]


def outputs_of(handler: type[Handler] | Handler) -> tuple[type[BaseModel], ...]:
    """The output models ``handler`` declares; ``()`` for one that declares none."""
    outputs = getattr(handler, "outputs", ())
    return outputs if isinstance(outputs, tuple) else ()
