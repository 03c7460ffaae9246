"""What the sandbox can be told: where to listen, what data to serve, how badly to behave."""

from __future__ import annotations

from dataclasses import dataclass, field

from processor.dev.sandbox.center_lists import LIST_KEYS
from processor.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Settings of one sandbox; ``check`` raises ``ConfigError`` listing what is wrong.

    ``api_keys`` empty means any non-empty key is accepted; each key is one organisation with
    its own rate-limit bucket. ``seed``, ``guests`` and ``centers`` must match the
    simulator's for its webhooks to name records the sandbox knows.
    """

    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 1
    guests: int = 300
    centers: int = 3
    calls_per_window: int = 60
    window_seconds: float = 60.0
    latency_ms: float = 0.0  # mean added latency, jittered +/- 50 %
    error_rate: float = 0.0  # fraction answered with a 5xx
    throttle_rate: float = 0.0  # extra fraction answered 429 although the bucket had a token
    timeout_rate: float = 0.0  # fraction answered only after hang_seconds
    hang_seconds: float = 30.0
    # Retry-After of an injected throttle; 0: whole seconds until a token refills, as Zenoti
    # sends. A fraction compresses time for tests and benchmarks.
    throttle_retry_after: float = 0.0
    api_keys: list[str] = field(default_factory=list)
    # Wrapper keys of the lists Zenoti does not document (``center_lists.LIST_KEYS``), e.g.
    # {"center_members": "center_members"}, to try a client against another guess.
    list_keys: dict[str, str] = field(default_factory=dict)
    status_names: bool = False  # statuses in center-wide lists as names ("Frozen"), not numbers

    def check(self) -> None:
        """Raise ``ConfigError`` naming every out-of-range field, at once."""
        problems = [
            f"{name} must be within [0, 1], got {value}"
            for name, value in (("error_rate", self.error_rate),
                                ("throttle_rate", self.throttle_rate),
                                ("timeout_rate", self.timeout_rate))
            if not 0.0 <= value <= 1.0
        ]
        positive = (("calls_per_window", self.calls_per_window), ("guests", self.guests),
                    ("centers", self.centers), ("window_seconds", self.window_seconds))
        problems += [f"{name} must be > 0, got {value}" for name, value in positive if value <= 0]
        nonnegative = (("latency_ms", self.latency_ms), ("hang_seconds", self.hang_seconds))
        problems += [f"{name} must be >= 0, got {v}" for name, v in nonnegative if v < 0]
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be within [0, 65535], got {self.port}")
        unknown = set(self.list_keys) - set(LIST_KEYS)
        if unknown:
            problems.append(f"list_keys names no list with an undocumented key: {sorted(unknown)}")
        if any(not key for key in self.api_keys):
            problems.append("api_keys must not contain an empty key")
        if problems:
            raise ConfigError("invalid sandbox config: " + "; ".join(problems))
