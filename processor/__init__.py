"""zenoti-events: Zenoti webhooks, durably queued on RabbitMQ, enriched by handler plugins.

The public surface for plugin authors is listed in ``__all__``; everything else is internal.
"""

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
