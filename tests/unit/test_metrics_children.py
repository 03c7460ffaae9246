"""Every metric child whose labels are known at start exists, at 0, as soon as a process is
built: a worker that restarted and hung with a small backlog, or an ingress whose first answers
are 5xx, must show as an increase from 0, not as a series that appears (which ``increase()``
does not see). And the fixed label lists agree with the code that counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from processor import errors
from processor.metrics import (
    API_STATUSES,
    CACHE_KINDS,
    DELIVERY_OUTCOMES,
    ENDPOINTS,
    MESSAGE_OUTCOMES,
    SNAPSHOT_RESULTS,
    UNKNOWN_TENANT,
    Metrics,
)
from processor.settings import Settings, TenantSettings
from processor.wiring import build_ingress, build_worker, installed

ROOT = Path(__file__).resolve().parents[2]
TENANTS = {"acme": TenantSettings(webhook_secrets=[SecretStr("acme-secret-1")],
                                  api_key=SecretStr("k1")),
           "beta": TenantSettings(webhook_secrets=[SecretStr("beta-secret-1")],
                                  api_key=SecretStr("k2"))}


def zero(metrics: Metrics, name: str, **labels: str) -> bool:
    return metrics.registry.get_sample_value(name, labels) == 0.0


@pytest.fixture
def settings() -> Settings:
    return Settings(tenants=TENANTS)


async def test_a_built_worker_has_every_handler_tenant_and_endpoint_child_at_zero(
    settings: Settings,
) -> None:
    process = build_worker(settings, installed(), metrics=Metrics())
    m = process.metrics
    try:
        for handler in ("membership-freeze", "guestpass-redeemed", "package-status"):
            for outcome in MESSAGE_OUTCOMES:
                assert zero(m, "zenoti_events_messages_total", handler=handler, outcome=outcome)
            assert zero(m, "zenoti_events_in_flight", handler=handler)
            assert zero(m, "zenoti_events_handler_seconds_count", handler=handler)
        for tenant in TENANTS:
            assert zero(m, "zenoti_events_api_budget_deferred_total", tenant=tenant)
            assert zero(m, "zenoti_events_api_budget_paused_total", tenant=tenant)
            assert zero(m, "zenoti_events_api_tokens_wait_seconds_count", tenant=tenant)
        for endpoint in ENDPOINTS:
            for status in ("429", "500", "timeout", "error"):
                assert zero(m, "zenoti_events_api_calls_total", endpoint=endpoint, status=status)
        for kind in settings.snapshot_kinds:
            assert zero(m, "zenoti_events_snapshot_lookups_total", kind=kind, result="unusable")
        rendered = m.render().decode()
        assert 'zenoti_events_api_calls_total{endpoint="guest",status="429"} 0.0' in rendered
        # No Redis: no claim either way.
        assert m.registry.get_sample_value("zenoti_events_redis_up", {"store": "dedupe"}) is None
    finally:
        await process.aclose()


async def test_a_built_ingress_has_every_tenant_outcome_child_at_zero(settings: Settings) -> None:
    process = build_ingress(settings, bindings=[], metrics=Metrics())
    m = process.metrics
    try:
        for tenant in TENANTS:
            for outcome, status in DELIVERY_OUTCOMES.items():
                assert zero(m, "zenoti_events_deliveries_total", tenant=tenant, outcome=outcome,
                            status=str(status))
            assert zero(m, "zenoti_events_deliveries_unsigned_total", tenant=tenant)
        tenant, outcome, status = UNKNOWN_TENANT
        assert zero(m, "zenoti_events_deliveries_total", tenant=tenant, outcome=outcome,
                    status=str(status))
    finally:
        await process.aclose()


def test_the_delivery_outcomes_are_the_ones_the_errors_and_the_ingress_answer() -> None:
    rejected = {cls.code: cls.status for cls in (
        errors.InvalidSignature, errors.PayloadTooLarge, errors.BodyTimeout,
        errors.InvalidEnvelope)}
    for code, status in rejected.items():
        assert DELIVERY_OUTCOMES[code] == status
    assert (errors.UnknownTenant.code, errors.UnknownTenant.status) == UNKNOWN_TENANT[1:]
    assert DELIVERY_OUTCOMES[errors.BrokerUnavailable.outcome] == 503
    source = (ROOT / "processor" / "ingress" / "app.py").read_text()
    counted = re.findall(r'_count\(tenant, "(\w+)", (\d+)\)', source)
    assert counted, "the ingress's counting calls were not found"
    for outcome, status in counted:
        assert DELIVERY_OUTCOMES[outcome] == int(status), outcome


def test_the_endpoints_and_kinds_are_the_clients_own() -> None:
    source = (ROOT / "processor" / "zenoti" / "client.py").read_text()
    called = set(re.findall(r'_Call\(f?"(\w+?)(?:\{kind\})?"', source))
    called |= {f"center_{kind}" for kind in ("members", "guests")}
    assert called - {"center_"} == set(ENDPOINTS)
    assert set(CACHE_KINDS) <= set(ENDPOINTS)
    assert {"429", "timeout", "error"} <= set(API_STATUSES)
    assert {"hit", "loaded", "unusable"} <= set(SNAPSHOT_RESULTS)
