"""Fixtures of the browser tests: headless Chromium driven by Selenium through the system's
chromedriver (Debian's ``chromium`` and ``chromium-driver``; missing, the tests skip locally
and fail under ``CI``), and the real processes of one module: the sandbox, the ingress, a
worker and ``zenoti-events console``, all on the test session's virtual host."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from processor.broker import topology
from processor.dev.stack import readyz
from tests.browser.console import SIZE, Console
from tests.conftest import Broker, missing
from tests.integration.amqp import TEST_BINDINGS, channel, reset
from tests.integration.processes import Stack, free_port
from tests.integration.test_end_to_end import ALL

READ_TOKEN = "browser-read-token"
WRITE_TOKEN = "browser-write-token"
ENRICHED_QUEUE = "browser.enriched"
"""Bound to ``zenoti.enriched`` (every key) by the fixture: where the tests see outputs."""
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
"""The screenshots of ``docs/console.md``, taken afresh by every run."""


@pytest.fixture(scope="session")
def driver() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with a 1280x900 viewport (the screenshots' size). Of the session, so
    that it comes before the broker: without a browser, nothing else is started."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        missing("no chromium and chromedriver here (Debian: apt-get install chromium "
                "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--hide-scrollbars", f"--window-size={SIZE[0]},{SIZE[1]}"):
        options.add_argument(argument)
    chrome = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        chrome.set_page_load_timeout(20)
        chrome.set_script_timeout(10)
        chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": SIZE[0], "height": SIZE[1], "deviceScaleFactor": 1, "mobile": False})
        yield chrome
    finally:
        chrome.quit()


@dataclass
class System:
    """The processes of one module: ``stack`` (sandbox, ingress, worker) and the console at
    ``console_url``; ``restart_worker`` replaces the worker with one of other settings."""

    stack: Stack
    console_url: str
    worker: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def amqp_url(self) -> str:
        return self.stack.amqp_url

    def restart_worker(self, **settings: str) -> None:
        """Stop the worker (SIGTERM, as a deployment does), start one with ``settings``
        (``ZENOTI_EVENTS_*`` variables) over the stack's, and wait until it is ready."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            self.worker.wait(timeout=20)
        self.worker = self.stack.spawn("worker", env={**self.stack.env, **settings},
                                       ready=readyz(self.stack.worker_port), timeout=30)


async def _prepare(url: str) -> None:
    """Nothing left from another module; the exchanges there, and our queue on the output."""
    await reset(url, ALL)
    async with channel(url) as ch:
        await topology.declare(ch, TEST_BINDINGS)
        queue = await ch.declare_queue(ENRICHED_QUEUE, durable=False, auto_delete=False)
        await queue.bind(topology.ENRICHED, routing_key="#")


@pytest.fixture(scope="module")
def system(broker: Broker) -> Iterator[System]:
    """Sandbox, ingress and console started and ready (the worker is the tests': each starts
    the one it needs), tokens for a read-only and a write log-in, plain HTTP cookies."""
    asyncio.run(_prepare(broker.url))
    port = free_port()
    # Redis off: de-duplication per process, so every run's events are new to its processes
    # (the console has no Redis at all: its overview says so; it reads the others' /metrics)
    settings = {"ZENOTI_EVENTS_RECONNECT_MAX_DELAY": "1", "ZENOTI_EVENTS_REDIS_URL": ""}
    with Stack(broker.url, settings=settings) as running:
        running.sandbox(timeout=30)
        running.ingress()
        others = {k: v for k, v in running.env.items() if k != "ZENOTI_EVENTS_REDIS_URL"}
        running.spawn("console", "--host", "127.0.0.1", "--port", str(port), env={
            **others, "ZENOTI_EVENTS_CONSOLE_TOKEN": READ_TOKEN,
            "ZENOTI_EVENTS_CONSOLE_WRITE_TOKEN": WRITE_TOKEN,
            "ZENOTI_EVENTS_CONSOLE_SECURE_COOKIE": "false",
            "ZENOTI_EVENTS_CONSOLE_METRICS_URLS": json.dumps([
                f"http://127.0.0.1:{p}/metrics" for p in (running.ingress_port,
                                                          running.worker_port)]),
        }, ready=f"http://127.0.0.1:{port}/login", timeout=30)
        yield System(running, f"http://127.0.0.1:{port}")
    asyncio.run(_unbind(broker.url))


async def _unbind(url: str) -> None:
    async with channel(url) as ch:
        await ch.queue_delete(ENRICHED_QUEUE)


@pytest.fixture
def console(driver: webdriver.Chrome, system: System) -> Iterator[Console]:
    """The console in the browser, logged out (no cookie) at the start of each test."""
    driver.delete_all_cookies()
    yield Console(driver, system.console_url, SHOTS)
    driver.delete_all_cookies()
