"""Handler classes, good and broken, for the plugin-loading tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from processor import Context, Event


class Data(BaseModel):
    x: int


class Good:
    name = "good"
    event_types = ("Good.Happened",)
    schema = Data

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        return None


class BadEverything:
    name = "Bad Name"
    event_types = ["not", "a", "tuple"]  # noqa: RUF012 - wrong on purpose
    schema = dict

    def handle(self, event: Any, ctx: Any) -> None:
        return None


class NeedsArguments(Good):
    name = "needs-arguments"

    def __init__(self, required: int) -> None:
        self.required = required


not_a_class = Good()
