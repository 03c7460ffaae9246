"""``Recorder``: the ``publish`` of a test ``Context``, remembering what a handler published."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


class Published(NamedTuple):
    """One output: its name (the routing key on ``zenoti.enriched``), the model, and the JSON
    the worker would have sent (``model.model_dump_json()``)."""

    name: str
    model: BaseModel
    body: bytes


class Recorder:
    """Called as ``ctx.publish(name, model)``; keeps each output in order.

    Like the worker, it serialises the model at once: a model the worker could not send fails
    here too, in the handler's ``publish`` call. The helpers fail with an ``AssertionError``
    that lists what was published, so a failing test says what happened instead.
    """

    def __init__(self) -> None:
        self.published: list[Published] = []

    async def __call__(self, name: str, model: BaseModel) -> None:
        if not name:
            raise ValueError("publish needs an output name (the routing key)")
        self.published.append(Published(name, model, model.model_dump_json().encode()))

    def __len__(self) -> int:
        return len(self.published)

    def __iter__(self) -> Iterator[Published]:
        return iter(self.published)

    @property
    def names(self) -> list[str]:
        """The names published, in order."""
        return [p.name for p in self.published]

    def only(self, name: str | None = None) -> Published:
        """The one output (of ``name``, if given); ``AssertionError`` unless exactly one."""
        found = [p for p in self.published if name is None or p.name == name]
        assert len(found) == 1, (
            f"expected one output{f' named {name!r}' if name else ''}, got {self._listing()}")
        return found[0]

    def models(self, model_type: type[ModelT]) -> list[ModelT]:
        """The published models of ``model_type``, in order."""
        return [p.model for p in self.published if isinstance(p.model, model_type)]

    def json(self, name: str | None = None) -> Any:
        """The one output (of ``name``) as the JSON a consumer of ``zenoti.enriched`` reads."""
        return json.loads(self.only(name).body)

    def clear(self) -> None:
        """Forget everything published so far."""
        self.published.clear()

    def _listing(self) -> str:
        if not self.published:
            return "nothing published"
        return ", ".join(f"{p.name} ({type(p.model).__name__})" for p in self.published)
