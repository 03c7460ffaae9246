"""The example plugin's handler, tested with nothing but the zenoti-events kit: the public
``processor`` root, ``processor.testing`` and the fixtures of its pytest plugin."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import pytest
from zenoti_events_example import EchoHandler

from processor import Context, Event, InvalidPayload
from processor.testing import Outcome, Recorder, envelope, event_of, fate_of, plugin_problems


def echo(text: str) -> Event[Any]:
    body = envelope("Example.Echo", {"text": text}, event_id="evt-1")
    return event_of(EchoHandler, body, tenant="acme")


def test_the_installed_plugin_passes_the_workers_checks() -> None:
    (point,) = entry_points(group="zenoti_events.handlers", name="example-echo")
    assert point.load() is EchoHandler
    assert plugin_problems(EchoHandler, point.name) == []


async def test_an_echo_publishes_its_text_without_calling_zenoti(
    zenoti_handler_context: Context, zenoti_recorder: Recorder
) -> None:
    await EchoHandler().handle(echo("hello"), zenoti_handler_context)
    assert zenoti_recorder.json("example.echoed") == {"event_id": "evt-1", "tenant": "acme",
                                                      "text": "hello", "schema_version": 1}
    assert zenoti_handler_context.zenoti.calls == 0


@pytest.mark.parametrize(("text", "outcome", "reason"), [
    ("poison", Outcome.DEAD_LETTER, "invalid_payload"),
    ("flaky", Outcome.RETRY, "transient"),
])
async def test_a_misbehaving_text_has_the_fate_its_exception_says(
    zenoti_handler_context: Context, zenoti_recorder: Recorder, text: str, outcome: Outcome,
    reason: str,
) -> None:
    fate = await fate_of(EchoHandler(), echo(text), zenoti_handler_context)
    assert (fate.outcome, fate.reason) == (outcome, reason)
    assert zenoti_recorder.names == []


def test_an_echo_without_text_is_refused_before_the_handler_runs() -> None:
    with pytest.raises(InvalidPayload, match="text: Field required"):
        event_of(EchoHandler, envelope("Example.Echo", {"words": "hello"}))
