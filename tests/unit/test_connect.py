"""``AMQP_URL`` as a list of brokers: how it is read, and which address a connection tries
first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from processor.broker import connect as broker
from processor.broker.connect import Addresses, parse, shown
from processor.cli import main
from processor.errors import ConfigError
from processor.logs import get_logger

A = "amqp://u:p@rabbit-0:5672/prod"
B = "amqp://u:p@rabbit-1:5672/prod"
C = "amqp://u:p@rabbit-2:5673/prod"


def test_one_url_is_a_list_of_one() -> None:
    assert parse("amqp://guest:guest@127.0.0.1:5672/") == ("amqp://guest:guest@127.0.0.1:5672/",)


def test_full_urls_separated_by_commas_are_kept_in_order_spaces_ignored() -> None:
    assert parse(f" {A}, {B} ,{C} ") == (A, B, C)


def test_a_comma_inside_a_password_stays_in_it() -> None:
    url = "amqp://u:pa,ss@rabbit-0:5672/prod"
    assert parse(f"{url},{B}") == (url, B)


@pytest.mark.parametrize("value", ["", "  ", ","])
def test_an_empty_list_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match=r"empty|not an amqp"):
        parse(value)


def test_hosts_listed_inside_one_url_are_refused_with_the_way_to_write_them() -> None:
    with pytest.raises(ConfigError, match="full URL") as refused:
        parse("amqp://u:secret@h1:5672,h2:5672/v")
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize("url", ["http://u:secret@h1/", "amqp://u:secret@/v", "h1:5672"])
def test_what_is_not_a_broker_url_is_refused_without_its_credentials(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(url)
    assert "secret" not in str(refused.value)


def test_shown_keeps_scheme_host_port_and_vhost_only() -> None:
    assert shown("amqps://user:pw@rabbit-2:5671/prod?heartbeat=30") == "amqps://rabbit-2:5671/prod"
    assert shown("amqp://u:p@[::1]:5672/") == "amqp://[::1]:5672/"


@pytest.mark.parametrize("url", [
    "amqp://zenoti:5555/Secret@127.0.0.1:5672/prod",  # a password with an unencoded '/'
    "amqp://u:se?cret@h/v", "amqp://u:se#cret@h/v",
])
def test_a_password_that_breaks_the_url_is_never_shown_nor_said(url: str) -> None:
    assert "ecret" not in shown(url)
    with pytest.raises(ConfigError, match="percent-encode") as refused:
        parse(url)
    assert "ecret" not in str(refused.value)


def test_a_port_out_of_range_is_a_config_error_not_a_failover_stopper() -> None:
    with pytest.raises(ConfigError, match="port out of range"):
        parse(f"amqp://u:p@h1:99999/v,{A}")


@pytest.mark.parametrize("other", ["amqps://u:p@rabbit-1:5671/prod", "amqp://u:p@rabbit-1/dev"])
def test_a_list_must_name_one_broker_one_scheme_one_vhost(other: str) -> None:
    """A failover from amqps to amqp would send the credentials in clear; two vhosts would
    split the traffic."""
    with pytest.raises(ConfigError, match="mix amqp:// with amqps:// or name different vhosts"):
        parse(f"{A},{other}")


def test_the_first_attempt_starts_at_the_first_address() -> None:
    assert Addresses(f"{A},{B},{C}").order() == [A, B, C]


def test_after_a_failure_the_next_attempt_starts_after_it_and_wraps() -> None:
    addresses = Addresses(f"{A},{B},{C}")
    addresses.failed(B)
    assert addresses.order() == [C, A, B]
    addresses.failed(C)
    assert addresses.order() == [A, B, C]


def test_the_address_that_answered_is_tried_first_next_time() -> None:
    addresses = Addresses(f"{A},{B},{C}")
    addresses.failed(A)
    addresses.answered(B)
    assert addresses.order() == [B, C, A]


def test_a_lost_connection_moves_on_unless_another_answered_since() -> None:
    addresses = Addresses(f"{A},{B},{C}")
    addresses.answered(B)
    addresses.lost(B)
    assert addresses.order()[0] == C
    addresses.answered(A)
    addresses.lost(C)  # an old connection closing late
    assert addresses.order()[0] == A


class FakeConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self.close_callbacks: set[Any] = set()

    def close(self) -> None:
        for callback in self.close_callbacks:
            callback(self, None)


def fake_brokers(monkeypatch: pytest.MonkeyPatch, answering: set[str]) -> list[str]:
    """A handshake answering for ``answering`` alone; returns the URLs tried, in order."""
    tried: list[str] = []

    async def fake_connect(url: str, *_: Any) -> FakeConnection:
        tried.append(url)
        if url not in answering:
            raise ConnectionRefusedError(111, "Connection refused")
        return FakeConnection(url)

    monkeypatch.setattr(broker, "_handshake", fake_connect)
    return tried


async def test_connect_skips_dead_addresses_and_logs_them_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = fake_brokers(monkeypatch, answering={C})
    with structlog.testing.capture_logs() as logged:
        connection = await broker.connect(f"{A},{B},{C}", attempt_timeout=1, name="test",
                                          log=get_logger())
    assert tried == [A, B, C] and isinstance(connection, FakeConnection) and connection.url == C
    assert [(line["event"], line["address"]) for line in logged] == [
        ("broker.address_failed", "amqp://rabbit-0:5672/prod"),
        ("broker.address_failed", "amqp://rabbit-1:5672/prod"),
        ("broker.address_chosen", "amqp://rabbit-2:5673/prod"),
    ]
    assert "u:p@" not in repr(logged)


async def test_a_lost_connection_makes_the_next_connect_try_another_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = fake_brokers(monkeypatch, answering={A, B})
    addresses = Addresses(f"{A},{B}")
    first = await broker.connect(addresses, attempt_timeout=1, name="test")
    assert isinstance(first, FakeConnection)
    first.close()  # the node went away
    second = await broker.connect(addresses, attempt_timeout=1, name="test")
    assert tried == [A, B] and isinstance(second, FakeConnection) and second.url == B


async def test_when_no_address_answers_the_error_names_each_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried = fake_brokers(monkeypatch, answering=set())
    with pytest.raises(ConnectionRefusedError) as refused:
        await broker.connect(f"{A},{B}", attempt_timeout=1, name="test")
    assert tried == [A, B]
    [note] = refused.value.__notes__
    assert "rabbit-0:5672" in note and "rabbit-1:5672" in note and "u:p@" not in note


async def test_an_address_that_never_answers_costs_at_most_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hangs(url: str, *_: Any) -> FakeConnection:
        if url == A:
            await asyncio.sleep(60)
        return FakeConnection(url)

    monkeypatch.setattr(broker, "_handshake", hangs)
    started = asyncio.get_running_loop().time()
    connection = await broker.connect(f"{A},{B}", attempt_timeout=0.2, name="test")
    assert isinstance(connection, FakeConnection) and connection.url == B
    assert asyncio.get_running_loop().time() - started < 1.0


@pytest.mark.parametrize("command", ["ingress", "worker"])
def test_a_process_given_hosts_inside_one_url_refuses_to_start_and_says_how(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", "amqp://u:secret@h1,h2/")
    monkeypatch.setenv("ZENOTI_EVENTS_ALLOW_UNSIGNED", "true")
    monkeypatch.setenv("ZENOTI_EVENTS_LOG_FORMAT", "json")
    assert main([command]) == 2  # a configuration error, before any connection
    logged = capsys.readouterr().err
    assert "process.config_error" in logged and "full URL" in logged
    assert "secret" not in logged
