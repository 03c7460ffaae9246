"""A handler from outside the project: registered through the entry point, found after install.

It handles ``Example.Echo`` without calling Zenoti and publishes ``example.echoed``. For the
fault tests, three texts misbehave on purpose: ``poison`` is invalid (dead-lettered at once),
``flaky`` always fails transiently (parked once its attempts run out), and ``crash`` kills the
worker process (parked by the queue's delivery limit).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, InvalidPayload, TransientError


class EchoData(BaseModel):
    text: str


class Echoed(BaseModel):
    event_id: str
    tenant: str
    text: str


class EchoHandler:
    name: ClassVar[str] = "example-echo"
    event_types: ClassVar[tuple[str, ...]] = ("Example.Echo",)
    schema: ClassVar[type[BaseModel]] = EchoData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        if event.data.text == "poison":
            raise InvalidPayload("text must not be 'poison'")
        if event.data.text == "flaky":
            raise TransientError("flaky by design")
        if event.data.text == "crash":
            os._exit(70)  # as a segfault or an OOM kill would: no cleanup, no nack
        await ctx.publish("example.echoed", Echoed(event_id=event.key, tenant=event.tenant,
                                                   text=event.data.text))
