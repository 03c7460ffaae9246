"""A message the broker cannot take for what it is raises ``PublishRefused``, never
``BrokerUnavailable``, and never costs the next publish its channel."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiormq
import pytest

from processor.broker.publisher import ConfirmedPublisher
from processor.errors import BrokerUnavailable, PublishRefused
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import BROKER_HEADER_ALLOWANCE
from tests.conftest import Broker
from tests.integration.amqp import channel, drain

pytestmark = pytest.mark.integration

QUEUE = "test.publisher.refusals"
SMALL = BROKER_HEADER_ALLOWANCE + 4096  # a broker_max_message_size leaving 4 KiB of body


@pytest.fixture
async def publisher(broker: Broker) -> AsyncIterator[ConfirmedPublisher]:
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)
        await ch.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
    publishing = ConfirmedPublisher(broker.url, log=get_logger(test="refusals"),
                                    metrics=Metrics(), max_message_size=SMALL)
    await publishing.start()
    assert publishing.ready
    yield publishing
    await publishing.close()
    async with channel(broker.url) as ch:
        await ch.queue_delete(QUEUE)


async def publish(publisher: ConfirmedPublisher, body: bytes = b"{}", **kwargs: Any) -> None:
    await publisher.publish("", QUEUE, body, **{"message_id": "m", **kwargs})


async def test_a_message_id_over_255_bytes_is_refused_and_the_next_publish_goes_through(
    publisher: ConfirmedPublisher, broker: Broker,
) -> None:
    with pytest.raises(PublishRefused, match="message_id of 300 bytes"):
        await publish(publisher, message_id="é" * 150)  # 150 characters, 300 bytes
    await publish(publisher, b"after", message_id="ok")
    assert [m.body for m in await drain(broker.url, QUEUE, 1)] == [b"after"]


async def test_a_body_over_the_broker_limit_is_refused_and_the_next_publish_goes_through(
    publisher: ConfirmedPublisher, broker: Broker,
) -> None:
    with pytest.raises(PublishRefused, match="body of 4097 bytes"):
        await publish(publisher, b"x" * 4097)
    await publish(publisher, b"x" * 4096)
    assert [len(m.body) for m in await drain(broker.url, QUEUE, 1)] == [4096]


@pytest.mark.parametrize(("what", "kwargs"), [
    ("routing key", {"routing_key": "k" * 256}),
    ("content_type", {"content_type": "c" * 256}),
    ("header name", {"headers": {"h" * 129: "v"}}),
    ("cannot be encoded", {"headers": {"h": object()}}),
])
async def test_other_properties_amqp_cannot_carry_are_refused(
    publisher: ConfirmedPublisher, broker: Broker, what: str, kwargs: dict[str, Any],
) -> None:
    routing_key = kwargs.pop("routing_key", QUEUE)
    with pytest.raises(PublishRefused, match=what):
        await publisher.publish("", routing_key, b"{}", message_id="m", **kwargs)
    await publish(publisher, b"after")
    assert [m.body for m in await drain(broker.url, QUEUE, 1)] == [b"after"]


def connection_ports(vhost: str) -> list[str]:
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "-p", vhost, "--no-table-headers",
         "vhost", "peer_port"], check=True, capture_output=True, text=True, timeout=60)
    return sorted(line.split("\t")[1] for line in listed.stdout.splitlines()
                  if line.startswith(f"{vhost}\t"))


async def test_a_channel_the_broker_closes_over_a_message_is_reopened_at_once(
    publisher: ConfirmedPublisher, broker: Broker, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker closes the channel over a property it rejects (here an ``expiration`` that
    is not a number: this API cannot send one, so the test slips it in)."""
    if not broker.vhost:
        pytest.skip("needs the local broker and rabbitmqctl to list connections")
    before = connection_ports(broker.vhost)
    properties = aiormq.spec.Basic.Properties

    def with_bad_expiration(**kwargs: Any) -> Any:
        if kwargs.get("message_id") == "bad":
            kwargs["expiration"] = "not-a-number"
        return properties(**kwargs)

    monkeypatch.setattr(aiormq.spec.Basic, "Properties", with_bad_expiration)
    with pytest.raises(PublishRefused, match="invalid expiration"):
        await publish(publisher, message_id="bad")
    await publish(publisher, b"after", message_id="good")  # waits for the new channel
    assert [m.body for m in await drain(broker.url, QUEUE, 1)] == [b"after"]
    assert connection_ports(broker.vhost) == before, "the connection was replaced"


async def test_a_nack_or_return_is_still_broker_unavailable(
    publisher: ConfirmedPublisher,
) -> None:
    with pytest.raises(BrokerUnavailable):
        await publisher.publish("", "no.such.queue", b"{}", message_id="m")


@pytest.mark.parametrize("value", ["x" * 200_000, "é" * 60_000])
async def test_headers_over_one_frame_are_refused_and_the_connection_keeps_serving(
    publisher: ConfirmedPublisher, broker: Broker, value: str,
) -> None:
    with pytest.raises(PublishRefused, match="fit one AMQP frame"):
        await publish(publisher, headers={"x-zenoti-error": value})
    await publish(publisher, b"after", message_id="ok", headers={"x-zenoti-error": "x" * 4000})
    assert [m.body for m in await drain(broker.url, QUEUE, 1)] == [b"after"]
