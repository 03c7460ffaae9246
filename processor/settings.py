"""Typed settings, read from the environment (prefix ``ZENOTI_EVENTS_``) once, in ``main``.

Nothing reads the environment anywhere else: the ``Settings`` object is passed down.
Secrets are ``SecretStr`` so that they never render in logs, errors or reprs.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TENANT = "default"
_TENANT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class TenantSettings(BaseModel):
    """One Zenoti organisation: its webhook secrets (several during a rotation) and API key."""

    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    api_key: SecretStr = SecretStr("")


class Settings(BaseSettings):
    """Everything a process of zenoti-events can be told."""

    model_config = SettingsConfigDict(env_prefix="ZENOTI_EVENTS_", env_nested_delimiter="__")

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    zenoti_api_url: str = "https://api.zenoti.com"
    zenoti_api_timeout: float = 8.0
    # The default tenant, served on /webhooks/zenoti.
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    api_key: SecretStr = SecretStr("")
    # More tenants, on /webhooks/zenoti/{name}: JSON {"name": {"webhook_secrets": [...], ...}}
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)

    ingress_host: str = "0.0.0.0"
    ingress_port: int = 8080
    max_body_bytes: int = 1024 * 1024
    confirm_timeout: float = 5.0
    retry_after_seconds: int = 30

    worker_metrics_port: int = 9100
    prefetch: int = 32
    shutdown_grace: float = 20.0
    reconnect_max_delay: float = 10.0
    # Override a handler's event types: JSON {"membership-freeze": ["Guest.Membership.Freeze"]}
    handler_event_types: dict[str, list[str]] = Field(default_factory=dict)

    api_calls_per_window: int = 60
    api_window_seconds: float = 60.0

    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    @field_validator("tenants")
    @classmethod
    def _tenant_names_are_path_safe(
        cls, value: dict[str, TenantSettings]
    ) -> dict[str, TenantSettings]:
        bad = [name for name in value if not _TENANT_NAME.match(name)]
        if bad:
            raise ValueError(f"tenant names must be letters, digits, '-' or '_': {bad}")
        return value

    def all_tenants(self) -> dict[str, TenantSettings]:
        """The default tenant plus the named ones; a named ``default`` overrides the top level."""
        default = TenantSettings(webhook_secrets=self.webhook_secrets, api_key=self.api_key)
        return {DEFAULT_TENANT: default, **self.tenants}
