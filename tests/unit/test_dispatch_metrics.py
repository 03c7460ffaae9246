"""A worker's metric series exist from start-up: one that hangs before its first message
still shows zeros, so an alert on a rate has a series to see."""

from __future__ import annotations

from pydantic import SecretStr

from handlers.membership_freeze import MembershipFreeze
from processor.broker.publisher import ConfirmedPublisher
from processor.logs import get_logger
from processor.metrics import Metrics
from processor.settings import RetryLimits, Settings
from processor.worker.dedupe import MemoryDeduplicator
from processor.worker.dispatch import OUTCOMES, Dispatcher
from processor.worker.retry import RetryPolicy
from processor.zenoti.clients import ZenotiClients


async def test_every_outcome_of_every_handler_is_exposed_before_any_message() -> None:
    metrics, log = Metrics(), get_logger()
    settings = Settings(api_key=SecretStr("k"))
    clients = ZenotiClients(settings, metrics)
    Dispatcher(MembershipFreeze(), publisher=ConfirmedPublisher("amqp://nowhere/", log=log,
                                                                metrics=metrics),
               clients=clients, tenants=frozenset({"default"}),
               retry=RetryPolicy("membership-freeze", [1.0], RetryLimits()),
               done=MemoryDeduplicator(60, 10), metrics=metrics, log=log)
    text = metrics.render().decode()
    for outcome in OUTCOMES:
        line = (f'zenoti_events_messages_total{{handler="membership-freeze",'
                f'outcome="{outcome}"}} 0.0')
        assert line in text
    assert 'zenoti_events_in_flight{handler="membership-freeze"} 0.0' in text
    await clients.aclose()
