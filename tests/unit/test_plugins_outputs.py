"""A handler's declared outputs: optional, and checked like the rest of the contract when
present (every problem listed, each naming the output)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from handlers.guestpass_redeemed import GuestpassRedeemed
from handlers.membership_freeze import MembershipFreeze
from handlers.package_status import PackageStatus
from processor import Context, Event
from processor.handler import Publishes, outputs_of
from processor.worker.plugins import check
from schemas.enriched import Output


class Done(Output):
    event_name: ClassVar[str] = "test.done"
    version: ClassVar[int] = 1

    key: str


class DoneV2(Done):
    version: ClassVar[int] = 2


class Unversioned(BaseModel):  # a plain model, as plugins wrote them before outputs had versions
    event_name: ClassVar[str] = "test.plain"
    version: ClassVar[int] = 1


class Data(BaseModel):
    x: int


class Plain:  # a plugin made before outputs were declared
    name: ClassVar[str] = "declares"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Declares",)
    schema: ClassVar[type[BaseModel]] = Data

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        return None


class Declares(Plain):
    outputs: ClassVar[Any] = (Done,)


def declaring(outputs: Any) -> type[Declares]:
    return type("Declaring", (Declares,), {"outputs": outputs})


def test_the_built_in_handlers_declare_their_versioned_outputs() -> None:
    for handler in (MembershipFreeze, GuestpassRedeemed, PackageStatus):
        assert check(handler, handler.name) == []
        assert isinstance(handler(), Publishes)
        assert [getattr(o, "version", None) for o in outputs_of(handler)] == [1]


def test_a_handler_without_outputs_still_loads_and_declares_none() -> None:
    assert check(Plain, "declares") == []
    assert outputs_of(Plain) == ()
    assert not isinstance(Plain(), Publishes)


def test_one_name_may_be_published_in_two_versions_side_by_side() -> None:
    assert check(declaring((Done, DoneV2)), "declares") == []


@pytest.mark.parametrize(("outputs", "problem"), [
    ([Done], "outputs must be a non-empty tuple"),
    ((), "outputs must be a non-empty tuple"),
    ((dict,), "must be a pydantic BaseModel subclass"),
    ((Done, Done), "two outputs are published as 'test.done'"),
    ((Unversioned,), "output Unversioned: its JSON must carry schema_version"),
    ((type("Nameless", (Output,), {}),), "output Nameless: event_name must be"),
    ((type("Wild", (Done,), {"event_name": "test.*"}),), "output Wild: event_name must be"),
    ((type("Suffixed", (Done,), {"event_name": "test.done.v2"}),), "not ending in .v<N>"),
    ((type("Zero", (Done,), {"version": 0}),), "output Zero: version must be an int from 1"),
    ((type("Flag", (Done,), {"version": True}),), "output Flag: version must be an int"),
])
def test_a_bad_output_declaration_is_a_problem_naming_the_output(
    outputs: Any, problem: str
) -> None:
    problems = check(declaring(outputs), "declares")
    assert len(problems) == 1
    assert problem in problems[0]


def test_every_bad_output_is_listed_at_once() -> None:
    bad = (type("Zero", (Done,), {"version": 0}), Unversioned)
    assert len(check(declaring(bad), "declares")) == 2
