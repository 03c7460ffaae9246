"""zenoti-events: Zenoti webhooks, durably queued on RabbitMQ, enriched by handler plugins.

The public surface for plugin authors is listed in ``__all__``; everything else is internal.
Its names are imported on first use (PEP 562), so importing a submodule (the pytest plugin,
say, loaded in every test run of a project that installs zenoti-events) costs nothing more.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from processor.errors import (
        HandlingError,
        InvalidPayload,
        PermanentError,
        RateLimited,
        ResourceNotFound,
        TransientError,
        ZenotiEventsError,
        ZenotiUnavailable,
    )
    from processor.handler import Context, Event, Handler
    from processor.zenoti_api import ZenotiApi

_HOMES = {
    "Context": "processor.handler", "Event": "processor.handler", "Handler": "processor.handler",
    "ZenotiApi": "processor.zenoti_api",
    **dict.fromkeys(("HandlingError", "InvalidPayload", "PermanentError", "RateLimited",
                     "ResourceNotFound", "TransientError", "ZenotiEventsError",
                     "ZenotiUnavailable"), "processor.errors"),
}

__all__ = [
    "Context",
    "Event",
    "Handler",
    "HandlingError",
    "InvalidPayload",
    "PermanentError",
    "RateLimited",
    "ResourceNotFound",
    "TransientError",
    "ZenotiApi",
    "ZenotiEventsError",
    "ZenotiUnavailable",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'processor' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
