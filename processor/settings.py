"""Typed settings, read from the environment (prefix ``ZENOTI_EVENTS_``) once, in ``main``.

Nothing reads the environment anywhere else: the ``Settings`` object is passed down.
Secrets are ``SecretStr`` so that they never render in logs, errors or reprs.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TENANT = "default"
# Room left under the broker's max_message_size for a message's properties and headers (a
# dead letter carries its whole retry history): a body may use the rest.
BROKER_HEADER_ALLOWANCE = 64 * 1024
_TENANT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# RabbitMQ's x-max-age: a number and one unit (years, months, days, hours, minutes, seconds).
_STREAM_AGE = re.compile(r"[1-9][0-9]*[YMDhms]")
_MIN_SECRET = 8


def _real_secrets(value: list[SecretStr]) -> list[SecretStr]:
    """Secrets stripped of the whitespace a mounted file adds; an empty one (a template
    whose variable was unset) would let anyone sign, so it is refused."""
    stripped = [SecretStr(s.get_secret_value().strip()) for s in value]
    if any(len(s.get_secret_value()) < _MIN_SECRET for s in stripped):
        raise ValueError(f"a webhook secret is empty or shorter than {_MIN_SECRET} characters")
    return stripped


class TenantSettings(BaseModel):
    """One Zenoti organisation: its webhook secrets (several during a rotation) and API key."""

    # Never echo what was given in a validation error: it may be a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    api_key: SecretStr = SecretStr("")

    _secrets = field_validator("webhook_secrets")(_real_secrets)


class RetryLimits(BaseModel):
    """When a handler gives up on a message: after ``max_attempts`` failures, or once its first
    failure is ``max_age_seconds`` old, whichever comes first."""

    max_attempts: int = Field(default=10, ge=1)
    max_age_seconds: float = Field(default=86_400.0, gt=0)


class Settings(BaseSettings):
    """Everything a process of zenoti-events can be told."""

    # Not validate_by_name: the OTEL_* fields below are read under their standard names
    # alone, the names the SDK's exporter reads too (by field name, ZENOTI_EVENTS_OTEL_* would
    # turn tracing on while the exporter, not seeing it, sent to localhost). Give them by alias.
    model_config = SettingsConfigDict(env_prefix="ZENOTI_EVENTS_", env_nested_delimiter="__",
                                      hide_input_in_errors=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    zenoti_api_url: str = "https://api.zenoti.com"
    zenoti_api_timeout: float = 8.0
    # Overall deadline of one Zenoti request (httpx's timeout bounds each read, not the whole).
    zenoti_call_deadline: float = Field(default=10.0, gt=0)
    # The default tenant, served on /webhooks/zenoti.
    webhook_secrets: list[SecretStr] = Field(default_factory=list)
    api_key: SecretStr = SecretStr("")
    # More tenants, on /webhooks/zenoti/{name}: JSON {"name": {"webhook_secrets": [...], ...}}
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    # A tenant without webhook secrets accepts unsigned (forgeable) deliveries: refused at
    # start-up unless this is set explicitly (the demo and tests do).
    allow_unsigned: bool = False

    ingress_host: str = "0.0.0.0"
    ingress_port: int = 8080
    max_body_bytes: int = 1024 * 1024
    confirm_timeout: float = 5.0
    # A confirm that comes after confirm_timeout (a broker alarm) is still awaited this long,
    # so that Zenoti's resend of a message queued after all is a duplicate; at most this many
    # publishes, holding at most these bytes (each body plus 8 KiB), are awaited at once, and
    # past either cap such a resend is published again.
    late_confirm_wait: float = Field(default=600.0, ge=0)
    late_confirm_max_watchers: int = Field(default=10_000, ge=0)
    late_confirm_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    retry_after_seconds: int = 30
    # The ingress's durable spool (processor.spool): where a delivery the broker does not
    # confirm in time is kept, on disk, before the 202. None or "" = no spool (503 instead).
    spool_dir: Path | None = None
    spool_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024 * 1024)
    spool_segment_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    spool_drain_seconds: float = Field(default=15.0, ge=0)  # forwarding at SIGTERM, at most
    # A spool write not on disk within this is answered 503: with CONFIRM_TIMEOUT before it,
    # every answer comes within Zenoti's 10 s.
    spool_write_timeout: float = Field(default=3.0, gt=0)
    ingress_drain_seconds: float = 2.0  # unready before closing, so balancers stop sending
    # Slow clients: a request's headers, then its body, must arrive within these (Zenoti itself
    # gives up after 10 s); at most this many connections at once; shutdown within the grace.
    ingress_header_timeout: float = Field(default=5.0, gt=0)
    ingress_body_timeout: float = Field(default=5.0, gt=0)
    ingress_max_connections: int = Field(default=1000, ge=1)
    # Over that cap, this many more connections are kept for /healthz, /readyz and /metrics
    # alone, so that the kubelet does not restart a pod for being busy.
    ingress_probe_connections: int = Field(default=16, ge=0)
    ingress_shutdown_grace: float = Field(default=10.0, ge=0)
    # The broker's max_message_size (RabbitMQ 4 defaults to 16 MiB, 3.x to 128 MiB): the body
    # cap plus headers must fit under it, checked at start-up.
    broker_max_message_size: int = Field(default=16 * 1024 * 1024, ge=4096)

    worker_metrics_port: int = 9100
    prefetch: int = 32
    # A handler's ``handle`` gets this long per message; past it the message is retried.
    handler_timeout: float = Field(default=60.0, gt=0)
    shutdown_grace: float = 20.0
    reconnect_max_delay: float = 10.0
    # Override a handler's event types: JSON {"membership-freeze": ["Guest.Membership.Freeze"]}
    handler_event_types: dict[str, list[str]] = Field(default_factory=dict)

    # Delayed retry: the delay queues' TTLs, in seconds (ascending), and when to give up.
    retry_tiers: list[float] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0])
    retry: RetryLimits = Field(default_factory=RetryLimits)
    handler_retry: dict[str, RetryLimits] = Field(default_factory=dict)
    # Retry age compares this worker's clock with the first failure's: a first failure
    # stamped further than this in the future (another pod's skewed clock) counts as now.
    retry_clock_skew: float = Field(default=300.0, ge=0)
    # Quorum queues dead-letter a message delivered this many times without an ack (a worker
    # that crashes on it): the poison-message bound.
    delivery_limit: int = Field(default=10, ge=1)
    # Whether the ingress and workers declare the topology when they connect (true: what a dev
    # stack and compose do). False: they only check, passively, that what they use exists, and
    # stop (ConfigError) naming what is missing; `zenoti-events topology` declares it, as a user
    # of its own with configure rights, so theirs need none (deploy/README.md, "Least
    # privilege on the broker"). `zenoti-events topology` always declares.
    declare_topology: bool = True
    # The RabbitMQ management HTTP API, where `zenoti-events topology` puts the topology's
    # policies (processor.ops.policies); unset: the broker address's host on 15672 (15671 for
    # amqps), as its user. The ingress and workers never use it.
    management_url: SecretStr | None = None

    # De-duplication: Redis (shared by every pod) when set, else bounded in-process memory.
    redis_url: SecretStr | None = None
    redis_prefix: str = "zenoti-events"  # keys are <prefix>:<use>:<key>
    dedupe_window_seconds: float = 86_400.0
    dedupe_memory_keys: int = 100_000

    api_calls_per_window: int = 60
    api_window_seconds: float = 60.0
    # In-place retries of one API call (5xx, timeouts, a 429 asking for a short wait).
    api_retries: int = Field(default=2, ge=0)
    api_retry_backoff: float = 0.2
    api_short_wait: float = 2.0  # longer waits for a token happen in the broker, not here
    api_cache_enabled: bool = True  # false only to measure what the cache saves
    # Center snapshots (processor.zenoti.snapshots): which kinds to ask for a center at a time
    # ("members", "guests"; empty: point look-ups only), after how many events of a center
    # within the hour, and how old guests' details may grow before an event refreshes them.
    snapshot_kinds: list[str] = Field(default_factory=lambda: ["members", "guests"])
    snapshot_min_demand: int = Field(default=3, ge=1)
    snapshot_refresh_seconds: float = Field(default=600.0, gt=0)

    # The archive stream zenoti.archive (processor.broker.topology): every accepted delivery,
    # kept this long ("7D": RabbitMQ's x-max-age) and up to this size, in segments of this size
    # (retention removes whole segments). Set when the stream is made; a policy changes them.
    archive_max_age: str = "7D"
    archive_max_bytes: int = Field(default=10 * 1024**3, ge=1, le=2**63 - 1)
    # RabbitMQ refuses a stream segment over 3,000,000,000 bytes (PRECONDITION_FAILED).
    archive_segment_bytes: int = Field(default=100 * 1024**2, ge=4096, le=3_000_000_000)

    # Tracing (processor.tracing, docs/observability.md): off unless these standard
    # OpenTelemetry variables ask for it, read under their own names (no prefix); the SDK
    # reads the rest itself (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_BSP_*...).
    otel_sdk_disabled: str = Field(default="", validation_alias="OTEL_SDK_DISABLED")
    otel_traces_exporter: str = Field(default="", validation_alias="OTEL_TRACES_EXPORTER")
    otel_exporter_otlp_endpoint: str = Field(default="",
                                             validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_traces_endpoint: str = Field(
        default="", validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_exporter_otlp_protocol: str = Field(default="",
                                             validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL")
    otel_exporter_otlp_traces_protocol: str = Field(
        default="", validation_alias="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    otel_service_name: str = Field(default="", validation_alias="OTEL_SERVICE_NAME")
    # At shutdown, buffered spans get this long to be exported; then the process exits anyway.
    tracing_flush_seconds: float = Field(default=5.0, ge=0)

    # `zenoti-events console` (processor.console): its port, the token that logs in (required:
    # no default credentials) and the one that may also replay and purge (unset: read-only).
    console_port: int = Field(default=8091, ge=1, le=65535)
    console_token: SecretStr | None = None
    console_write_token: SecretStr | None = None
    console_secure_cookie: bool = True
    # The ingress's and workers' /metrics the console's overview reads (in flight, enriched
    # per minute, the spool), e.g. ["http://worker-0:9100/metrics"]; empty: not shown.
    console_metrics_urls: list[str] = Field(default_factory=list)

    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"

    @model_validator(mode="after")
    def _largest_body_fits_the_broker(self) -> Settings:
        # Else the broker would close the shared channel over the largest accepted deliveries.
        if self.max_body_bytes + BROKER_HEADER_ALLOWANCE > self.broker_max_message_size:
            raise ValueError(
                f"max_body_bytes ({self.max_body_bytes}) plus {BROKER_HEADER_ALLOWANCE} bytes for "
                f"headers is over broker_max_message_size ({self.broker_max_message_size}): "
                "lower the body cap or raise the broker's max_message_size and this setting")
        return self

    @field_validator("spool_dir", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("retry_tiers")
    @classmethod
    def _tiers_ascend(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value) or value != sorted(set(value)):
            raise ValueError("retry_tiers must be distinct positive seconds in ascending order")
        return value

    _secrets = field_validator("webhook_secrets")(_real_secrets)

    @field_validator("archive_max_age")
    @classmethod
    def _stream_age(cls, value: str) -> str:
        if not _STREAM_AGE.fullmatch(value):
            raise ValueError("archive_max_age is a number and a unit of Y, M, D, h, m or s "
                             f"(e.g. 7D, 36h), not {value!r}")
        return value

    @field_validator("snapshot_kinds")
    @classmethod
    def _known_snapshot_kinds(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - {"members", "guests"})
        if unknown:
            raise ValueError(f"snapshot_kinds may name 'members' and 'guests', not {unknown}")
        return value

    @field_validator("tenants")
    @classmethod
    def _tenant_names_are_path_safe(
        cls, value: dict[str, TenantSettings]
    ) -> dict[str, TenantSettings]:
        bad = [name for name in value if not _TENANT_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"tenant names must be letters, digits, '-' or '_': {bad}")
        return value

    def retry_limits(self, handler: str) -> RetryLimits:
        """The retry limits of ``handler``: its own if set, else the default."""
        return self.handler_retry.get(handler, self.retry)

    def all_tenants(self) -> dict[str, TenantSettings]:
        """The configured tenants. The default one (``/webhooks/zenoti``) exists only when the
        top level configures it (a secret or an API key) or no named tenant exists (a
        single-organisation deployment); a named ``default`` overrides the top level."""
        tenants = dict(self.tenants)
        configured = bool(self.webhook_secrets or self.api_key.get_secret_value())
        if DEFAULT_TENANT not in tenants and (configured or not tenants):
            default = TenantSettings(webhook_secrets=self.webhook_secrets, api_key=self.api_key)
            tenants = {DEFAULT_TENANT: default, **tenants}
        return tenants

    def unsigned_tenants(self) -> list[str]:
        """The tenants that would accept unsigned (forgeable) deliveries: those with no secret.
        The ingress refuses to start with any unless ``allow_unsigned`` is set."""
        return [name for name, t in self.all_tenants().items() if not t.webhook_secrets]
