"""Settings come from ``ZENOTI_EVENTS_*`` and never show their secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from processor.errors import ConfigError
from processor.logs import get_logger
from processor.settings import DEFAULT_TENANT, Settings
from processor.wiring import check_signing


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


def test_named_tenants_alone_leave_no_default_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", '{"acme": {"webhook_secrets": ["secret-1"]}}')
    assert set(Settings().all_tenants()) == {"acme"}


def test_an_api_key_at_the_top_level_makes_a_default_tenant_that_must_be_signed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_API_KEY", "real-key")
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", '{"acme": {"webhook_secrets": ["secret-1"]}}')
    settings = Settings()
    assert settings.unsigned_tenants() == [DEFAULT_TENANT]
    with pytest.raises(ConfigError, match=r"default.*ALLOW_UNSIGNED"):
        check_signing(settings, get_logger())


def test_every_unsigned_tenant_is_named_at_once_and_allowed_only_explicitly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS",
                       '{"a": {}, "b": {}, "c": {"webhook_secrets": ["secret-1"]}}')
    with pytest.raises(ConfigError, match="a, b have no webhook secret"):
        check_signing(Settings(), get_logger())
    monkeypatch.setenv("ZENOTI_EVENTS_ALLOW_UNSIGNED", "true")
    check_signing(Settings(), get_logger())  # allowed: warns and counts instead


def test_a_signed_single_tenant_deployment_starts() -> None:
    check_signing(Settings(webhook_secrets=[SecretStr("secret-1")]), get_logger())


@pytest.mark.parametrize("secrets", ['[""]', '["   "]', '["short"]'])
def test_an_empty_or_short_webhook_secret_is_refused(
    monkeypatch: pytest.MonkeyPatch, secrets: str
) -> None:
    # An unset template variable must not become a secret anyone can sign with.
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", f'{{"acme": {{"webhook_secrets": {secrets}}}}}')
    with pytest.raises(ValueError, match="empty or shorter"):
        Settings()


def test_a_secret_keeps_no_whitespace_from_a_mounted_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_WEBHOOK_SECRETS", '["  mounted-secret\\n"]')
    assert Settings().webhook_secrets[0].get_secret_value() == "mounted-secret"


def test_a_settings_error_never_echoes_what_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", '{"acme": {"webhook_secrets": "whsec-LIVE-1"}}')
    with pytest.raises(ValueError) as raised:
        Settings()
    assert "whsec-LIVE-1" not in str(raised.value)


def test_a_tenant_name_with_a_trailing_newline_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_TENANTS", '{"acme\\n": {}}')
    with pytest.raises(ValueError, match="tenant names"):
        Settings()


def test_the_archive_keeps_7_days_and_10_gib_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert (settings.archive_max_age, settings.archive_max_bytes) == ("7D", 10 * 1024**3)
    monkeypatch.setenv("ZENOTI_EVENTS_ARCHIVE_MAX_AGE", "36h")
    assert Settings().archive_max_age == "36h"


@pytest.mark.parametrize("age", ["7 days", "7d", "0D", "D", "1.5h", ""])
def test_an_archive_age_rabbitmq_cannot_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, age: str,
) -> None:
    monkeypatch.setenv("ZENOTI_EVENTS_ARCHIVE_MAX_AGE", age)
    with pytest.raises(ValueError, match="archive_max_age"):
        Settings()
