"""``zenoti-events dlq types unrouted``: the event types waiting in ``zenoti.unrouted``, with
counts, and for each the handler whose schema accepts its sample and the exact setting that
would route it there; on the real broker, through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from processor.broker import topology
from tests.conftest import Broker
from tests.integration.amqp import TEST_BINDINGS, channel, reset

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).parent.parent / "fixtures" / "samples"


async def park(url: str, event_type: str, data: object, key: str) -> None:
    body = json.dumps({"event_id": key, "event_type": event_type, "data": data}).encode()
    async with channel(url) as ch:
        events = await ch.get_exchange(topology.EVENTS)
        await events.publish(aio_pika.Message(
            body, message_id=f"default:{key}", headers={"tenant": "default",
                                                      "event_type": event_type,
                                                      "received_at": "2026-12-01T10:00:00+00:00"},
        ), routing_key=event_type.lower())


async def test_types_in_unrouted_are_counted_and_matched_to_the_handler_that_fits(
    broker: Broker,
) -> None:
    await reset(broker.url, TEST_BINDINGS)
    async with channel(broker.url) as ch:
        await topology.declare(ch, TEST_BINDINGS, retry_tiers=[5.0])
    freeze = json.loads((SAMPLES / "membership-freeze.data.json").read_text())
    for i in range(3):  # the type Zenoti really sends, guessed wrong by our default
        await park(broker.url, "Guest.Membership.Frozen", freeze, f"fz-{i}")
    await park(broker.url, "Appointment.Started", {"appointment_id": "a"}, "ap-1")
    env = {**os.environ, "ZENOTI_EVENTS_AMQP_URL": broker.url, "ZENOTI_EVENTS_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "processor.cli", "dlq", "types", "unrouted"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    frozen = next(line for line in lines if line.startswith("Guest.Membership.Frozen"))
    assert frozen.split()[1] == "3" and "membership-freeze" in frozen
    appointment = next(line for line in lines if line.startswith("Appointment.Started"))
    assert appointment.split()[1] == "1" and appointment.rstrip().endswith("-")
    setting = ('ZENOTI_EVENTS_HANDLER_EVENT_TYPES={"membership-freeze": '
               '["Guest.Membership.Freeze", "Guest.Membership.Frozen"]}')
    assert setting in done.stdout
    again = subprocess.run([sys.executable, "-m", "processor.cli", "dlq", "list", "unrouted"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert "4 message(s)" in again.stdout  # looking moved nothing
