"""Faults the sandbox injects so that clients meet Zenoti's bad days in tests.

Each API call draws at most one fault, from one uniform number split in this order:
``throttle_rate`` (an extra 429, as if other apps of the organisation used the budget),
``error_rate`` (a 5xx), ``timeout_rate`` (the answer comes after ``hang_seconds``). Rates
summing above 1 are cut in that order. Latency, with jitter, is added to every call.
Draws come from ``random.Random(seed)``, so a run with the same calls is reproducible.
"""

from __future__ import annotations

import enum
import random


class Fault(enum.Enum):
    THROTTLE = "throttle"
    ERROR = "error"
    HANG = "hang"


ERROR_STATUSES = (500, 502, 503, 504)


class Faults:
    """Decides which fault, if any, a call gets, and how long it waits first."""

    def __init__(
        self,
        *,
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        timeout_rate: float = 0.0,
        latency_ms: float = 0.0,
        seed: int = 0,
    ) -> None:
        for name, rate in (("throttle_rate", throttle_rate), ("error_rate", error_rate),
                           ("timeout_rate", timeout_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {rate}")
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self._thresholds = (
            (throttle_rate, Fault.THROTTLE),
            (throttle_rate + error_rate, Fault.ERROR),
            (throttle_rate + error_rate + timeout_rate, Fault.HANG),
        )
        self._latency = latency_ms / 1000.0
        self._rng = random.Random(seed)

    def draw(self) -> Fault | None:
        """The fault of the next call, or ``None`` for a normal answer."""
        roll = self._rng.random()
        for threshold, fault in self._thresholds:
            if roll < threshold:
                return fault
        return None

    def error_status(self) -> int:
        """Which 5xx an ``ERROR`` fault answers with."""
        return self._rng.choice(ERROR_STATUSES)

    def latency(self) -> float:
        """Seconds to wait before answering: the mean, jittered by +/- 50 %."""
        if not self._latency:
            return 0.0
        return self._latency * self._rng.uniform(0.5, 1.5)
