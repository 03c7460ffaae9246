"""The real processes (sandbox, ingress, worker) of end-to-end tests: the one launcher,
``processor.dev.stack.Stack``, with the tests' secret and key, JSON logs on stderr (pytest
shows them with a failure) and quick reconnects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from processor.dev import stack as devstack
from processor.dev.launcher import free_port, wait_ready

__all__ = ["API_KEY", "SECRET", "Stack", "free_port", "stack", "wait_ready"]

SECRET = "e2e-webhook-secret"
API_KEY = "e2e-api-key"


@dataclass
class Stack(devstack.Stack):
    """Ports and environment of one test's processes; ``stop()`` returns their exit codes."""

    secret: str = SECRET
    api_key: str = API_KEY
    settings: dict[str, str] = field(
        default_factory=lambda: {"ZENOTI_EVENTS_RECONNECT_MAX_DELAY": "1"})


@contextmanager
def stack(amqp_url: str) -> Iterator[Stack]:
    with Stack(amqp_url) as running:
        yield running
