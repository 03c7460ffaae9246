"""A handler from outside the project: registered through the entry point, found after install.

It handles ``Example.Echo`` without calling Zenoti and publishes ``example.echoed``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, InvalidPayload


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
        await ctx.publish("example.echoed", Echoed(event_id=event.key, tenant=event.tenant,
                                                   text=event.data.text))
