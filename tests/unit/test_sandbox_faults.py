"""The sandbox's fault draws: reproducible, in proportion, and never more than one per call."""

from __future__ import annotations

from collections import Counter

import pytest

from processor.dev.sandbox.faults import ERROR_STATUSES, Fault, Faults


def test_no_rates_means_no_faults() -> None:
    faults = Faults(seed=3)
    assert {faults.draw() for _ in range(1000)} == {None}


def test_the_same_seed_draws_the_same_faults() -> None:
    def draws() -> list[Fault | None]:
        faults = Faults(throttle_rate=0.2, error_rate=0.2, timeout_rate=0.2, seed=9)
        return [faults.draw() for _ in range(200)]

    assert draws() == draws()


def test_faults_come_in_proportion_to_their_rates() -> None:
    faults = Faults(throttle_rate=0.1, error_rate=0.3, timeout_rate=0.2, seed=1)
    counts = Counter(faults.draw() for _ in range(10_000))
    assert counts[Fault.THROTTLE] == pytest.approx(1000, rel=0.15)
    assert counts[Fault.ERROR] == pytest.approx(3000, rel=0.1)
    assert counts[Fault.HANG] == pytest.approx(2000, rel=0.1)


def test_rates_summing_above_one_are_cut_in_order() -> None:
    faults = Faults(throttle_rate=0.0, error_rate=1.0, timeout_rate=1.0, seed=1)
    assert {faults.draw() for _ in range(500)} == {Fault.ERROR}


def test_errors_are_5xx_and_latency_jitters_around_the_mean() -> None:
    faults = Faults(latency_ms=100.0, seed=2)
    assert {faults.error_status() for _ in range(200)} <= set(ERROR_STATUSES)
    waits = [faults.latency() for _ in range(500)]
    assert all(0.05 <= wait <= 0.15 for wait in waits)
    assert sum(waits) / len(waits) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError):
        Faults(error_rate=rate)
