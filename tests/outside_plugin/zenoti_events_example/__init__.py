"""A handler from outside the project: registered through the entry point, found after install.

It handles ``Example.Echo`` without calling Zenoti and publishes ``example.echoed``, an
output it declares (``outputs``) so that ``zenoti-events schemas`` and ``asyncapi`` describe
it; its ``schema_version`` comes from ``schemas.enriched.Output``. For the
fault tests, three texts misbehave on purpose: ``poison`` is invalid (dead-lettered at once),
``flaky`` always fails transiently (parked once its attempts run out), and ``crash`` kills the
worker process (parked by the queue's delivery limit).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, InvalidPayload, TransientError
from schemas.enriched import Output


class EchoData(BaseModel):
    text: str


class Echoed(Output):
    """The echo of one event's text."""

    event_name: ClassVar[str] = "example.echoed"
    version: ClassVar[int] = 1

    event_id: str
    tenant: str
    text: str


class EchoHandler:
    name: ClassVar[str] = "example-echo"
    event_types: ClassVar[tuple[str, ...]] = ("Example.Echo",)
    schema: ClassVar[type[BaseModel]] = EchoData
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (Echoed,)

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        if event.data.text == "poison":
            raise InvalidPayload("text must not be 'poison'")
        if event.data.text == "flaky":
            raise TransientError("flaky by design")
        if event.data.text == "crash":
            os._exit(70)  # as a segfault or an OOM kill would: no cleanup, no nack
        await ctx.publish(Echoed.routing_key(), Echoed(event_id=event.key, tenant=event.tenant,
                                                   text=event.data.text))
