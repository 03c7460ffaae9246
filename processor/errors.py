"""Every exception zenoti-events raises on purpose, under one root.

The tree::

    ZenotiEventsError
    ├── ConfigError                 settings or plugins are wrong; the process refuses to start
    │   ├── PluginError             every problem found while loading handler plugins, at once
    │   └── TopologyMismatch        a queue or exchange exists with other arguments
    ├── DeliveryRejected            the ingress refuses a delivery (carries the HTTP status)
    │   ├── InvalidSignature        401: missing or wrong ``zenoti-webhook-signature``
    │   ├── PayloadTooLarge         413: body over the configured cap
    │   ├── BodyTimeout             408: the body did not arrive within its deadline
    │   ├── UnknownTenant           404: no tenant of that name is configured
    │   └── InvalidEnvelope         400: not JSON, not an object, or a required field is wrong
    ├── BrokerUnavailable           the broker did not confirm in time, nacked, or is away
    │   └── SpoolUnavailable        ...and the ingress's spool cannot keep it either (a disk
    │       │                       error): 503, as without a spool
    │       └── SpoolFull           ...because the spool is at ``SPOOL_MAX_BYTES``
    └── HandlingError               raised while a worker handles a message; its type is its fate
        ├── PermanentError          dead letter: retrying cannot help
        │   ├── InvalidPayload      the message or its ``data`` fails validation
        │   ├── ResourceNotFound    Zenoti says the resource does not exist
        │   └── PublishRefused      the broker refuses this message itself (too large, a bad
        │                           property): not the broker being away, so never a retry
        └── TransientError          retry: the same message may succeed later
            ├── RateLimited         Zenoti answered 429 (carries ``retry_after`` seconds)
            │   └── BudgetExhausted our shared budget has no token soon enough: wait in the broker
            ├── ZenotiUnavailable   5xx, timeouts, connection errors from the Zenoti API
            ├── UnexpectedResponse  Zenoti answered 2xx in a shape we do not know (retried, then
            │                       parked as ``unexpected_response``)
            └── HandlerTimeout      ``handle`` ran past its deadline (``HANDLER_TIMEOUT``)

Fate: ``processor.fate.decide`` maps a raised exception to ack, retry or dead letter. Any
exception outside ``HandlingError`` counts as transient there, so a bug never loses a message.
Messages never contain secrets.
"""

from __future__ import annotations

from pydantic import ValidationError

_MAX_LISTED = 5


class ZenotiEventsError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(ZenotiEventsError):
    """Settings or plugins are wrong; raised at start-up only."""


class PluginError(ConfigError):
    """One or more handler plugins failed their checks; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} handler plugin problem(s):\n{listing}")


class TopologyMismatch(ConfigError):
    """A queue or exchange already exists with other arguments (the broker answered
    ``PRECONDITION_FAILED``): the message names which one and what differs."""


class DeliveryRejected(ZenotiEventsError):
    """The ingress refuses a delivery; ``status`` is the HTTP answer, ``code`` a stable slug."""

    status: int = 400
    code: str = "rejected"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class InvalidSignature(DeliveryRejected):
    status = 401
    code = "invalid_signature"


class PayloadTooLarge(DeliveryRejected):
    status = 413
    code = "payload_too_large"


class BodyTimeout(DeliveryRejected):
    status = 408
    code = "body_timeout"


class UnknownTenant(DeliveryRejected):
    status = 404
    code = "unknown_tenant"


class InvalidEnvelope(DeliveryRejected):
    status = 400
    code = "invalid_envelope"


class BrokerUnavailable(ZenotiEventsError):
    """The broker did not take a message: not connected, nacked, unroutable or timed out.
    ``outcome`` is how the ingress counts the 503 it answers."""

    outcome: str = "broker_unavailable"


class SpoolUnavailable(BrokerUnavailable):
    """The broker did not take a delivery and the spool could not make it durable either
    (a write or sync failed): the ingress answers 503, never 2xx for what is on no disk."""

    outcome = "spool_unavailable"


class SpoolFull(SpoolUnavailable):
    """The spool holds ``SPOOL_MAX_BYTES`` already: 503 with ``Retry-After``."""

    outcome = "spool_full"


class HandlingError(ZenotiEventsError):
    """Raised while handling a message; the subclass decides the message's fate. ``parks_as``
    names the reason a retried message is parked with once its retries run out (by default
    the retry policy's own: ``attempts_exhausted``, ``max_age_exceeded``)."""

    reason: str = "handling_error"
    parks_as: str | None = None


class PermanentError(HandlingError):
    """Retrying cannot help: the message goes to the handler's dead-letter queue."""

    reason = "permanent"


class InvalidPayload(PermanentError):
    reason = "invalid_payload"


class ResourceNotFound(PermanentError):
    reason = "resource_not_found"


class PublishRefused(PermanentError):
    """The broker refused the message itself (over its size limit, a property it rejects):
    publishing the same bytes again cannot succeed, unlike ``BrokerUnavailable``."""

    reason = "publish_refused"


class TransientError(HandlingError):
    """The same message may succeed later: it is retried."""

    reason = "transient"


class RateLimited(TransientError):
    """Zenoti throttled us; ``retry_after`` is its advice in seconds, when it gave one."""

    reason = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class BudgetExhausted(RateLimited):
    """The tenant's API budget has no token within the short wait; ``retry_after`` is when
    one is expected. Raised before any call is made."""

    reason = "budget_exhausted"


class ZenotiUnavailable(TransientError):
    reason = "zenoti_unavailable"


class UnexpectedResponse(TransientError):
    """Zenoti answered 2xx with a body of a shape we do not know (e.g. a list without its
    wrapper key): retried, since it may be a passing fault, and parked when retries run out."""

    reason = "unexpected_response"
    parks_as = "unexpected_response"


class HandlerTimeout(TransientError):
    """A handler's ``handle`` did not finish within its deadline; the message is retried."""

    reason = "handler_timeout"


def describe(exc: ValidationError) -> str:
    """A short, human message naming each failing field (at most five): what every bad-input
    error says, so the ingress, the worker and the Zenoti client name a problem the same way."""
    parts = []
    for error in exc.errors()[:_MAX_LISTED]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - _MAX_LISTED
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
