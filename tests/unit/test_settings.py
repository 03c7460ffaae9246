"""Settings come from ``ZENOTI_EVENTS_*`` and never show their secrets."""

from __future__ import annotations

import pytest

from processor.settings import DEFAULT_TENANT, Settings


def test_defaults_point_at_the_local_broker_and_the_real_api() -> None:
    settings = Settings()
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.zenoti_api_url == "https://api.zenoti.com"
    assert settings.confirm_timeout == 5.0
    assert settings.api_calls_per_window == 60


def test_tenants_and_secrets_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_WEBHOOK_SECRETS", '["top-secret", "old-secret"]')
    monkeypatch.setenv("ZENOTI_EVENTS_API_KEY", "key-1")
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS",
                       '{"acme": {"webhook_secrets": ["acme-secret"], "api_key": "key-2"}}')
    tenants = Settings().all_tenants()
    assert set(tenants) == {DEFAULT_TENANT, "acme"}
    assert [s.get_secret_value() for s in tenants[DEFAULT_TENANT].webhook_secrets] == [
        "top-secret", "old-secret"]
    assert tenants["acme"].api_key.get_secret_value() == "key-2"


def test_secrets_never_appear_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_WEBHOOK_SECRETS", '["top-secret"]')
    monkeypatch.setenv("ZENOTI_EVENTS_API_KEY", "key-1")
    monkeypatch.setenv("ZENOTI_EVENTS_AMQP_URL", "amqp://u:broker-password@h/")
    text = repr(Settings()) + str(Settings().all_tenants())
    for secret in ("top-secret", "key-1", "broker-password"):
        assert secret not in text


def test_a_tenant_name_that_cannot_be_a_path_segment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", '{"a/b": {}}')
    with pytest.raises(ValueError, match="tenant names"):
        Settings()
