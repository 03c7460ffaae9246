"""The kit for handler authors (``processor.testing``) and its pytest plugin's fixtures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog
from pydantic import BaseModel

import processor.testing
from handlers.package_status import PackageStatus
from processor import Context, Event, InvalidPayload, ResourceNotFound, ZenotiApi
from processor.dev.sandbox import SandboxConfig
from processor.testing import (
    Outcome,
    Recorder,
    ZenotiSandbox,
    envelope,
    event_of,
    fate_of,
    make_context,
    plugin_problems,
    recorder_of,
)
from schemas.enriched import PackageStatusChanged


class Shout(BaseModel):
    text: str


class Shouter:
    """A handler of ``Test.Shout``: publishes its text upper-cased, or raises what it says."""

    name: ClassVar[str] = "shouter"
    event_types: ClassVar[tuple[str, ...]] = ("Test.Shout",)
    schema: ClassVar[type[BaseModel]] = Shout

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        if event.data.text == "missing":
            raise ResourceNotFound("no such thing")
        if event.data.text == "bug":
            raise KeyError("a bug")
        await ctx.publish("test.shouted", Shout(text=event.data.text.upper()))


def shout(text: str) -> Event[Any]:
    return event_of(Shouter, envelope("Test.Shout", {"text": text}, event_id="e-1"))


async def test_the_recorder_keeps_each_output_with_the_json_the_worker_would_send() -> None:
    recorder = Recorder()
    await recorder("a.b", Shout(text="hi"))
    await recorder("c.d", Shout(text="ho"))
    assert recorder.names == ["a.b", "c.d"]
    assert recorder.only("c.d").model == Shout(text="ho")
    assert recorder.json("a.b") == {"text": "hi"}
    assert [m.text for m in recorder.models(Shout)] == ["hi", "ho"]


async def test_the_recorder_says_what_was_published_when_one_output_was_expected() -> None:
    recorder = Recorder()
    with pytest.raises(AssertionError, match="nothing published"):
        recorder.only()
    await recorder("a.b", Shout(text="hi"))
    await recorder("a.b", Shout(text="ho"))
    with pytest.raises(AssertionError, match=r"named 'a.b', got a.b \(Shout\), a.b \(Shout\)"):
        recorder.only("a.b")


async def test_the_recorder_refuses_an_output_without_a_name() -> None:
    with pytest.raises(ValueError, match="output name"):
        await Recorder()("", Shout(text="hi"))


def test_plugin_problems_are_the_workers_start_up_checks() -> None:
    class Nameless(Shouter):
        name: ClassVar[str] = "No Spaces"

    assert plugin_problems(Shouter) == []
    assert plugin_problems(Shouter, "other") == [
        "name 'shouter' differs from its entry-point name 'other'"]
    assert plugin_problems(Nameless) == [
        "name must be lower-case letters, digits and '-' (got 'No Spaces')"]


def test_event_of_decodes_a_webhook_body_the_workers_way() -> None:
    received = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    body = envelope("Test.Shout", {"text": "hi"}, event_id="e-7")
    event = event_of(Shouter, json.dumps(body).encode(), tenant="acme", received_at=received,
                     attempt=3)
    assert (event.key, event.event_type, event.tenant) == ("e-7", "Test.Shout", "acme")
    assert event.data == Shout(text="hi")
    assert (event.received_at, event.attempt, event.delivery_id) == (received, 3, "e-7-delivery")
    assert event.event_timestamp is not None and event.event_timestamp.tzinfo is not None


def test_event_of_a_body_the_schema_refuses_raises_invalid_payload_naming_the_field() -> None:
    with pytest.raises(InvalidPayload, match="data does not match Shout: text: Field required"):
        event_of(Shouter, envelope("Test.Shout", {"words": "hi"}))


@pytest.mark.parametrize(("text", "outcome", "reason"), [
    ("hi", Outcome.ACK, ""),
    ("missing", Outcome.DEAD_LETTER, "resource_not_found"),
    ("bug", Outcome.RETRY, "unexpected_error"),
])
async def test_fate_of_is_the_workers_fate_for_what_handle_did(
    text: str, outcome: Outcome, reason: str
) -> None:
    async with make_context(zenoti=_NO_ZENOTI) as ctx:
        fate = await fate_of(Shouter(), shout(text), ctx)
    assert (fate.outcome, fate.reason) == (outcome, reason)
    assert recorder_of(ctx).names == (["test.shouted"] if outcome is Outcome.ACK else [])


async def test_make_context_uses_the_given_zenoti_recorder_and_log() -> None:
    recorder, log = Recorder(), structlog.get_logger("kit-test")
    async with make_context(zenoti=_NO_ZENOTI, recorder=recorder, log=log) as ctx:
        assert (ctx.zenoti, ctx.publish, ctx.log) == (_NO_ZENOTI, recorder, log)


def test_recorder_of_a_context_publishing_elsewhere_raises_type_error() -> None:
    async def publish(name: str, model: BaseModel) -> None: ...

    ctx = Context(zenoti=_NO_ZENOTI, log=structlog.get_logger(), publish=publish)
    with pytest.raises(TypeError, match="not a Recorder"):
        recorder_of(ctx)


async def test_make_context_without_a_sandbox_starts_one_for_itself() -> None:
    async with make_context() as ctx:
        assert isinstance(ctx.zenoti, ZenotiApi)
        invoice_id = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(ResourceNotFound, match=invoice_id):
            await ctx.zenoti.get_invoice(invoice_id)
        assert ctx.zenoti.calls == 1


def test_the_sandbox_makes_webhooks_of_the_types_it_knows_and_names_the_others(
    zenoti_sandbox: ZenotiSandbox,
) -> None:
    first = zenoti_sandbox.webhook("Guest.Package.StatusUpdate")
    first["data"].clear()
    again = zenoti_sandbox.webhook("Guest.Package.StatusUpdate")
    assert again["data"]["user_package_id"] and again["event_id"] == first["event_id"]
    assert zenoti_sandbox.webhook("Guest.Package.StatusUpdate", 1)["event_id"] != first["event_id"]
    with pytest.raises(ValueError, match=r"makes webhooks of \[.*\], not 'Nope.Never'"):
        zenoti_sandbox.webhook("Nope.Never")


async def test_each_sandbox_client_has_its_own_rate_limit_bucket() -> None:
    with ZenotiSandbox(SandboxConfig(port=0, calls_per_window=1)) as sandbox:
        guest_id = next(iter(sandbox.org.guests))
        for _ in range(2):
            async with sandbox.client("acme") as client:
                assert (await client.get_guest(guest_id)).id == guest_id
        assert (sandbox.stats.calls, sandbox.stats.throttled) == (2, 0)


async def test_the_handler_context_fixture_enriches_over_http_from_the_sandbox(
    zenoti_handler_context: Context, zenoti_recorder: Recorder, zenoti_sandbox: ZenotiSandbox,
) -> None:
    body = zenoti_sandbox.webhook("Guest.Package.StatusUpdate")
    await PackageStatus().handle(event_of(PackageStatus, body), zenoti_handler_context)
    sale = zenoti_sandbox.org.invoices[body["data"]["invoice"]["id"]]
    output = zenoti_recorder.only("guest.package.status_changed").model
    assert isinstance(output, PackageStatusChanged)
    assert output.guest.id == sale.guest_id
    assert zenoti_handler_context.zenoti.calls == 1


async def test_a_sandbox_on_a_bad_day_makes_the_handlers_event_a_retry() -> None:
    with ZenotiSandbox(SandboxConfig(port=0, error_rate=1.0)) as sandbox:
        body = sandbox.webhook("Guest.Package.StatusUpdate")
        async with make_context(sandbox=sandbox) as ctx:
            fate = await fate_of(PackageStatus(), event_of(PackageStatus, body), ctx)
    assert (fate.outcome, fate.reason) == (Outcome.RETRY, "zenoti_unavailable")
    assert recorder_of(ctx).names == []


def test_every_name_of_the_kit_exists() -> None:
    for name in processor.testing.__all__:
        assert getattr(processor.testing, name) is not None, name
    assert processor.testing.MemoryBroker.__module__ == "processor.broker.memory"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        getattr(processor.testing, "nothing")  # noqa: B009


PLUGIN = "processor.testing.pytest_plugin"
# What loading the plugin must not import: the project's modules, their libraries, pytest-asyncio.
HEAVY = ("processor", "schemas", "handlers", "pydantic", "pydantic_core", "pytest_asyncio",
         "aiohttp", "httpx", "structlog")


def modules_added(by: str, after: str) -> list[str]:
    """The modules that importing ``by`` adds, in a clean interpreter (``-I``: no environment,
    no current directory) that has imported ``after`` (comma-separated) already."""
    script = (f"import sys, {after}; before = set(sys.modules); import {by}; "
              "print(*sorted(set(sys.modules) - before))")
    return subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True,
                          check=True, timeout=60).stdout.split()


def test_the_pytest_plugin_is_registered_and_adds_only_itself_to_its_parent_packages() -> None:
    (plugin,) = entry_points(group="pytest11", name="zenoti_events")
    assert plugin.value == PLUGIN
    assert modules_added(PLUGIN, after="pytest, processor.testing") == [PLUGIN]


def test_loading_the_pytest_plugin_imports_nothing_of_zenoti_events_nor_its_libraries() -> None:
    parents = {"processor", "processor.testing", PLUGIN}
    added = modules_added(PLUGIN, after="pytest")
    assert [m for m in added if m.split(".")[0] in HEAVY and m not in parents] == []


ASYNC_TEST = """
import pytest

@pytest.mark.asyncio
async def test_it(zenoti_handler_context, zenoti_recorder):
    assert zenoti_handler_context.publish is zenoti_recorder
"""
# pytest-asyncio not installed (with --assert=plain: the rewriting hook would find it regardless)
NO_PYTEST_ASYNCIO = """
import sys

class NoPytestAsyncio:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pytest_asyncio":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoPytestAsyncio())
"""


def run_pytest(where: Path, test: str, *args: str,
               before: str = "") -> subprocess.CompletedProcess[str]:
    """pytest on the module ``test`` in ``where``, in a process of its own that ran ``before``."""
    (where / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    (where / "test_it.py").write_text(test)
    args = ("-q", "-p", "no:cacheprovider", *args, str(where))
    code = f"{before}\nimport pytest\nraise SystemExit(pytest.main({list(args)!r}))"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    return subprocess.run([sys.executable, "-c", code], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_handler_context_fixture_works_in_pytest_asyncios_strict_mode(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, ASYNC_TEST, "-o", "asyncio_mode=strict")
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_pytest_asyncio_the_handler_context_fixture_says_what_to_install(
    tmp_path: Path,
) -> None:
    test = "def test_it(zenoti_handler_context):\n    pass\n"
    result = run_pytest(tmp_path, test, "-p", "no:asyncio", "--assert=plain",
                        before=NO_PYTEST_ASYNCIO)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "needs pytest-asyncio: pip install pytest-asyncio" in result.stdout, result.stdout


def test_the_plugins_fixtures_are_named_as_zenoti_events_ones(tmp_path: Path) -> None:
    listed = run_pytest(tmp_path, "", "--fixtures", "-v").stdout
    names = re.findall(r"^(\w+)(?: \[\w+ scope\])? -- \S*processor/testing/pytest_plugin\.py:",
                       listed, re.MULTILINE)
    assert sorted(names) == ["zenoti_event_of", "zenoti_handler_context", "zenoti_recorder",
                             "zenoti_sandbox"], listed


class _NoZenoti:
    """A ``ctx.zenoti`` that must not be called."""

    calls = 0

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"ctx.zenoti.{name} was called")


_NO_ZENOTI: Any = _NoZenoti()
