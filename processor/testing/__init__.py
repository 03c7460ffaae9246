"""The kit for handler authors: test a handler as the worker would run it, in a few lines.

=====================  ========================================================================
name                   what it is
=====================  ========================================================================
``make_context``       ``async with make_context(...) as ctx``: a ``Context`` with a real
                       ``ZenotiClient`` talking to the sandbox Zenoti, a ``Recorder`` as its
                       ``publish`` and a structlog logger
``recorder_of``        the ``Recorder`` of such a context
``Recorder``           what a handler published (``only``, ``names``, ``models``, ``json``)
``Published``          one output: ``name``, ``model``, ``body`` (the JSON the worker sends)
``ZenotiSandbox``      the project's sandbox Zenoti on a free port, from its own thread; its
                       ``webhook(event_type)`` is a body about records it serves, ``client()``
                       a real client talking to it
``envelope``           a webhook body as Zenoti wraps ``data``
``event_of``           the ``Event`` the worker gives a handler for a webhook body
``fate_of``            handle an event and return the worker's ``Fate`` instead of raising
``plugin_problems``    what the worker's start-up checks find wrong with a handler class
``Fate``, ``Outcome``  a message's fate: ``ACK``, ``RETRY`` or ``DEAD_LETTER``, with its reason
``TENANT``             the tenant the kit's events and clients belong to by default
``MemoryBroker``       ``processor.broker.memory``'s in-memory broker: the topology's routing,
                       delay queues on a simulated clock, dead-lettering, a ``publisher``
=====================  ========================================================================

With pytest, the plugin ``processor.testing.pytest_plugin`` (loaded by itself once
zenoti-events is installed) gives the fixtures ``zenoti_sandbox``, ``zenoti_handler_context``,
``zenoti_recorder`` and ``zenoti_event_of``. ``docs/writing-handlers.md`` shows a whole test.

Names are imported on first use, so that loading the pytest plugin (which imports this
package) costs nothing until a fixture is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from processor.broker.memory import MemoryBroker
    from processor.fate import Fate, Outcome
    from processor.testing.context import make_context, recorder_of
    from processor.testing.events import TENANT, envelope, event_of, fate_of, plugin_problems
    from processor.testing.recorder import Published, Recorder
    from processor.testing.sandbox import ZenotiSandbox

__all__ = [
    "TENANT",
    "Fate",
    "MemoryBroker",
    "Outcome",
    "Published",
    "Recorder",
    "ZenotiSandbox",
    "envelope",
    "event_of",
    "fate_of",
    "make_context",
    "plugin_problems",
    "recorder_of",
]

_HOMES = {
    "Fate": "processor.fate", "Outcome": "processor.fate",
    "MemoryBroker": "processor.broker.memory",
    "make_context": "processor.testing.context", "recorder_of": "processor.testing.context",
    "TENANT": "processor.testing.events", "envelope": "processor.testing.events",
    "event_of": "processor.testing.events", "fate_of": "processor.testing.events",
    "plugin_problems": "processor.testing.events",
    "Published": "processor.testing.recorder", "Recorder": "processor.testing.recorder",
    "ZenotiSandbox": "processor.testing.sandbox",
}


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'processor.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
