"""The files ``zenoti-events new-handler`` writes (``processor.dev.scaffold``), as
``string.Template`` texts: ``$name`` (the handler), ``$dist``, ``$package``, ``$cls``."""

PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A zenoti-events handler plugin: $name."
requires-python = ">=3.11"
dependencies = ["zenoti-events"]

[project.optional-dependencies]
test = ["pytest>=8", "pytest-asyncio>=0.23"]

# The worker finds the handler here once the package is installed: `zenoti-events handlers`.
[project.entry-points."zenoti_events.handlers"]
$name = "$package.handler:$cls"

[tool.setuptools]
packages = ["$package"]

[tool.setuptools.package-data]
"$package" = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]
asyncio_mode = "auto"
asyncio_default_fixture_loop_scope = "function"
filterwarnings = ["error"]
'''

README = '''\
# $dist

The zenoti-events handler `$name`: each `Guestpass.redeemed` webhook's guest, with their name
and home center from the Zenoti API, published as `$name.enriched` on `zenoti.enriched`.

    pip install -e '.[test]'    # next to zenoti-events
    pytest                      # on the kit: a real Zenoti client against the sandbox Zenoti
    zenoti-events handlers      # lists $name; `zenoti-events worker` now consumes its queue

The contract, the kit and the fate of each exception: zenoti-events' `docs/writing-handlers.md`.
'''

INIT = '''\
"""The zenoti-events handler ``$name``: ``handler.py``.

Nothing is imported here: the worker loads the handler through its entry point."""
'''

SCHEMA = '''\
"""What ``$name`` reads of a webhook, and what it publishes."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, Field
from schemas.enriched import Output


class RedemptionData(BaseModel):
    """The fields of the webhook's ``data`` the handler reads; Zenoti sends more, ignored.
    A webhook without them is parked as ``invalid_payload`` before ``handle`` runs."""

    guest_id: str = Field(min_length=1)


class ${cls}Enriched(Output):
    """Published as ``$name.enriched``: the event's ids, and its guest
    as Zenoti has them. Its body carries ``schema_version``; a breaking change is a new
    ``version`` (zenoti-events' docs/contract.md)."""

    event_name: ClassVar[str] = "$name.enriched"
    version: ClassVar[int] = 1

    event_id: str
    tenant: str
    guest_id: str
    first_name: str | None = None
    last_name: str | None = None
    home_center_id: str | None = None
'''

HANDLER = '''\
"""The handler ``$name``: the guest of each ``Guestpass.redeemed`` webhook, read
through the Zenoti API, published as ``$name.enriched``.

Change the event types, the schema and what ``handle`` asks of ``ctx.zenoti``. Let its
exceptions propagate: their type is the message's fate (``ResourceNotFound``: parked;
``ZenotiUnavailable``, ``RateLimited``: retried later; zenoti-events' docs/writing-handlers.md
has the whole table).
"""

from __future__ import annotations

from typing import ClassVar

from processor import Context, Event
from pydantic import BaseModel

from $package.schema import ${cls}Enriched, RedemptionData


class $cls:
    """Publishes the guest of each guest-pass redemption."""

    name: ClassVar[str] = "$name"
    event_types: ClassVar[tuple[str, ...]] = ("Guestpass.redeemed",)
    schema: ClassVar[type[BaseModel]] = RedemptionData
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (${cls}Enriched,)

    async def handle(self, event: Event[RedemptionData], ctx: Context) -> None:
        """One API call at most: the guest (none when a center's snapshot has them)."""
        before = ctx.zenoti.calls
        guest = await ctx.zenoti.guest(event.data.guest_id)
        output = ${cls}Enriched(
            event_id=event.key, tenant=event.tenant, guest_id=guest.id,
            first_name=guest.personal_info.first_name, last_name=guest.personal_info.last_name,
            home_center_id=guest.center_id,
        )
        await ctx.publish(${cls}Enriched.routing_key(), output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls - before, guest_id=guest.id)
'''

TEST = '''\
"""``$cls`` on the zenoti-events kit: a real Zenoti client against the sandbox Zenoti.

The fixtures come from zenoti-events' pytest plugin: ``zenoti_sandbox`` (the sandbox, one per
session), ``zenoti_handler_context`` (the ``Context``) and ``zenoti_recorder`` (what it
published).
"""

from __future__ import annotations

from processor import Context
from processor.testing import (
    Outcome,
    Recorder,
    ZenotiSandbox,
    event_of,
    fate_of,
    plugin_problems,
)

from $package.handler import $cls
from $package.schema import ${cls}Enriched

UNKNOWN_GUEST = "00000000-0000-4000-8000-000000000000"


def test_the_handler_passes_the_workers_start_up_checks() -> None:
    assert plugin_problems($cls) == []


async def test_a_redemption_publishes_its_guest_as_zenoti_has_them(
    zenoti_handler_context: Context, zenoti_recorder: Recorder, zenoti_sandbox: ZenotiSandbox
) -> None:
    body = zenoti_sandbox.webhook("Guestpass.redeemed")
    await $cls().handle(event_of($cls, body), zenoti_handler_context)
    guest = zenoti_sandbox.org.guests[body["data"]["guest_id"]]
    published = zenoti_recorder.json(${cls}Enriched.routing_key())
    assert (published["event_id"], published["guest_id"]) == (body["event_id"], guest.id)
    assert (published["first_name"], published["home_center_id"]) == (
        guest.first_name, guest.center_id)
    assert published["schema_version"] == ${cls}Enriched.version
    assert zenoti_handler_context.zenoti.calls == 1


async def test_a_guest_zenoti_does_not_know_is_parked_as_not_found(
    zenoti_handler_context: Context, zenoti_recorder: Recorder, zenoti_sandbox: ZenotiSandbox
) -> None:
    body = zenoti_sandbox.webhook("Guestpass.redeemed")
    body["data"]["guest_id"] = UNKNOWN_GUEST
    fate = await fate_of($cls(), event_of($cls, body), zenoti_handler_context)
    assert (fate.outcome, fate.reason) == (Outcome.DEAD_LETTER, "resource_not_found")
    assert zenoti_recorder.names == []
'''
