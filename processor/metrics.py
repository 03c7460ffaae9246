"""Prometheus metrics, all on one explicit registry handed to ``Metrics`` (never the global one).

Names start with ``zenoti_events_``; every label has a bounded set of values: tenants are the
configured ones, handlers the installed ones, endpoints a fixed list, outcomes a fixed list.

The children whose labels are known at start are made at start, at 0 (``prepare_ingress``,
``prepare_worker``): an alert on ``increase()`` or ``rate()`` sees nothing of a series' first
sample, so a process that restarted and then hung, or failed a few times, would fire nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Fine near Zenoti's 10 s: the confirm (5 s) and spool write (3 s) bounds end at 8 s.
_ANSWER = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 30.0)
_SLOW = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# What the ingress answers, by outcome (the spool's three it makes itself); tests/unit/
# test_metrics_children.py holds these to processor.errors and the ingress's own code.
DELIVERY_OUTCOMES = {"accepted": 202, "parked": 202, "duplicate": 200, "ping": 200,
                     "invalid_signature": 401, "payload_too_large": 413, "body_timeout": 408,
                     "invalid_envelope": 400, "broker_unavailable": 503, "publish_refused": 500}
UNKNOWN_TENANT = ("unknown", "unknown_tenant", 404)  # a path naming no configured tenant
MESSAGE_OUTCOMES = ("ok", "retry", "deferred", "dead_letter", "duplicate")
ENDPOINTS = ("invoice", "guest", "memberships", "packages", "center_members", "center_guests",
             "centers")
CACHE_KINDS = ("invoice", "guest", "memberships", "packages")
# The API answers alerts watch (429, 5xx, no answer) and the usual ones; others appear when seen.
API_STATUSES = ("200", "404", "429", "500", "502", "503", "timeout", "error")
SNAPSHOT_RESULTS = ("hit", "loaded", "lone", "missing", "no_center", "disabled", "unusable",
                    "unexpected_shape")


class Metrics:
    """Every metric of both processes. Unused ones simply stay at zero in a given process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            "zenoti_events_deliveries", "Webhook deliveries answered by the ingress.",
            ["tenant", "outcome", "status"], registry=r,
        )
        self.unsigned = Counter(
            "zenoti_events_deliveries_unsigned",
            "Deliveries accepted with no signature check (a tenant with no secret, allowed "
            "only by ALLOW_UNSIGNED).", ["tenant"], registry=r,
        )
        self.ingress_connections_open = Gauge(
            "zenoti_events_ingress_connections_open",
            "Client connections open on the ingress (at most INGRESS_MAX_CONNECTIONS).",
            registry=r,
        )
        self.ingress_connections_refused = Counter(
            "zenoti_events_ingress_connections_refused",
            "Connections answered 503 and closed at once: INGRESS_MAX_CONNECTIONS were open.",
            registry=r,
        )
        self.ingress_probe_connections_open = Gauge(
            "zenoti_events_ingress_probe_connections_open",
            "Connections open on the ingress over INGRESS_MAX_CONNECTIONS, in the reserve that "
            "serves /healthz, /readyz and /metrics alone (at most INGRESS_PROBE_CONNECTIONS).",
            registry=r,
        )
        self.ingress_header_timeouts = Counter(
            "zenoti_events_ingress_header_timeouts",
            "Connections answered 408 and closed: a request's line and headers were not in "
            "within INGRESS_HEADER_TIMEOUT.", registry=r,
        )
        self.confirm_seconds = Histogram(
            "zenoti_events_confirm_seconds", "Publish-to-broker-confirm latency at the ingress.",
            buckets=_FAST, registry=r,
        )
        self.answer_seconds = Histogram(
            "zenoti_events_answer_seconds",
            "Seconds from a delivery's arrival at the ingress to its answer, whatever the "
            "answer (Zenoti counts one over 10 s as a failure).", buckets=_ANSWER, registry=r,
        )
        self.spool_entries = Gauge(
            "zenoti_events_spool_entries",
            "Deliveries in the ingress's spool, not yet confirmed by the broker.", registry=r,
        )
        self.spool_bytes = Gauge(
            "zenoti_events_spool_bytes", "Bytes the ingress's spool holds on disk.", registry=r,
        )
        self.spool_limit_bytes = Gauge(
            "zenoti_events_spool_limit_bytes",
            "SPOOL_MAX_BYTES: past it the ingress answers 503.", registry=r,
        )
        self.spool_oldest_age = Gauge(
            "zenoti_events_spool_oldest_age_seconds",
            "Age of the oldest delivery in the spool; 0 when it is empty.", registry=r,
        )
        self.spool_writes = Counter(
            "zenoti_events_spool_writes",
            "Deliveries written to the spool (on disk, answered 202).", registry=r,
        )
        self.spool_forwards = Counter(
            "zenoti_events_spool_forwards",
            "Spooled deliveries forwarded to the broker (confirmed, then deleted).", registry=r,
        )
        self.spool_sync_seconds = Histogram(
            "zenoti_events_spool_sync_seconds",
            "Seconds per spool write batch, fdatasync included (one batch, many deliveries).",
            buckets=_FAST, registry=r,
        )
        self.late_confirm_watchers = Gauge(
            "zenoti_events_late_confirm_watchers",
            "Publishes answered as unconfirmed whose confirm is still awaited in the background "
            "(at most LATE_CONFIRM_MAX_WATCHERS).", registry=r,
        )
        self.late_confirm_watched_bytes = Gauge(
            "zenoti_events_late_confirm_watched_bytes",
            "Memory those publishes hold, counted as each body plus 8 KiB (at most "
            "LATE_CONFIRM_MAX_BYTES).",
            registry=r,
        )
        self.late_confirm_unwatched = Counter(
            "zenoti_events_late_confirm_unwatched",
            "Publishes answered as unconfirmed whose confirm was not awaited: the watchers were "
            "at their cap, so a resend of one the broker did queue is published again.",
            registry=r,
        )
        self.broker_connected = Gauge(
            "zenoti_events_broker_connected", "1 while the process holds an open broker channel.",
            registry=r,
        )
        self.messages = Counter(
            "zenoti_events_messages", "Messages handled by a worker, by handler and outcome.",
            ["handler", "outcome"], registry=r,
        )
        self.handler_seconds = Histogram(
            "zenoti_events_handler_seconds", "Time spent in a handler, validation to ack.",
            ["handler"], buckets=_SLOW, registry=r,
        )
        self.in_flight = Gauge(
            "zenoti_events_in_flight", "Messages being handled right now.", ["handler"], registry=r,
        )
        self.api_calls = Counter(
            "zenoti_events_api_calls", "Zenoti API calls, by endpoint and HTTP status.",
            ["endpoint", "status"], registry=r,
        )
        self.api_seconds = Histogram(
            "zenoti_events_api_seconds", "Zenoti API call latency.", ["endpoint"],
            buckets=_SLOW, registry=r,
        )
        self.api_cache = Counter(
            "zenoti_events_api_cache", "API cache look-ups, by resource kind and result.",
            ["kind", "result"], registry=r,
        )
        self.api_coalesced = Counter(
            "zenoti_events_api_coalesced",
            "API requests that joined an identical call already in flight.", ["endpoint"],
            registry=r,
        )
        self.budget_deferred = Counter(
            "zenoti_events_api_budget_deferred",
            "Messages sent to wait in the broker: no API token within the short wait.",
            ["tenant"], registry=r,
        )
        self.budget_paused = Counter(
            "zenoti_events_api_budget_paused",
            "Times Zenoti said the budget is gone (429, or none remaining).", ["tenant"],
            registry=r,
        )
        self.snapshot_lookups = Counter(
            "zenoti_events_snapshot_lookups",
            "Center snapshot look-ups by kind and result (hit, loaded; or a fallback to point "
            "look-ups: lone, missing, no_center, disabled, unusable).", ["kind", "result"],
            registry=r,
        )
        self.snapshot_pages = Counter(
            "zenoti_events_snapshot_pages",
            "Pages of 100 fetched to load or refresh center snapshots.", ["kind"], registry=r,
        )
        self.redis_up = Gauge(
            "zenoti_events_redis_up",
            "1 while this process's last call to a Redis store reached Redis, 0 once one could "
            "not (refused, timed out, reset): the store then runs degraded (budget and "
            "de-duplication per process, no snapshots). No series until the store's first call; "
            "none at all for a store kept in memory.", ["store"], registry=r,
        )
        self.tokens_wait_seconds = Histogram(
            "zenoti_events_api_tokens_wait_seconds",
            "Time spent waiting for an API budget token before a call.", ["tenant"],
            buckets=_SLOW, registry=r,
        )

    def prepare_ingress(self, tenants: Iterable[str]) -> None:
        """Make at 0 every delivery child of ``tenants`` (and of unknown tenants)."""
        for tenant in tenants:
            self.unsigned.labels(tenant=tenant)
            for outcome, status in DELIVERY_OUTCOMES.items():
                self.deliveries.labels(tenant=tenant, outcome=outcome, status=str(status))
        tenant, outcome, status = UNKNOWN_TENANT
        self.deliveries.labels(tenant=tenant, outcome=outcome, status=str(status))

    def prepare_worker(self, tenants: Iterable[str], handlers: Iterable[str],
                       snapshot_kinds: Iterable[str] = ()) -> None:
        """Make at 0 every child a worker of ``handlers`` for ``tenants`` counts in."""
        for handler in handlers:
            self.handler_seconds.labels(handler=handler)
            self.in_flight.labels(handler=handler)
            for outcome in MESSAGE_OUTCOMES:
                self.messages.labels(handler=handler, outcome=outcome)
        for tenant in tenants:
            for metric in (self.budget_deferred, self.budget_paused, self.tokens_wait_seconds):
                metric.labels(tenant=tenant)
        self._prepare_api()
        for kind in snapshot_kinds:
            self.snapshot_pages.labels(kind=kind)
            for result in SNAPSHOT_RESULTS:
                self.snapshot_lookups.labels(kind=kind, result=result)

    def _prepare_api(self) -> None:
        for endpoint in ENDPOINTS:
            self.api_seconds.labels(endpoint=endpoint)
            self.api_coalesced.labels(endpoint=endpoint)
            for status in API_STATUSES:
                self.api_calls.labels(endpoint=endpoint, status=status)
        for kind in CACHE_KINDS:
            for result in ("hit", "miss"):
                self.api_cache.labels(kind=kind, result=result)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
