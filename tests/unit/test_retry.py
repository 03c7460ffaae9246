"""Planning a retry: tiers, backoff with jitter, Retry-After, and when to give up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from processor.fate import Fate, Outcome
from processor.retry import ATTEMPT, FIRST_FAILURE, HISTORY, Delay, GiveUp, RetryPolicy, tier_label
from processor.settings import RetryLimits

TIERS = (5.0, 30.0, 120.0, 600.0, 3600.0)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FAILED = Fate(Outcome.RETRY, "zenoti_unavailable", "ZenotiUnavailable: 503")


def policy(max_attempts: int = 10, max_age: float = 86_400.0, seed: int = 1) -> RetryPolicy:
    return RetryPolicy("package-status", TIERS, RetryLimits(max_attempts=max_attempts,
                                                             max_age_seconds=max_age),
                       rng=random.Random(seed))


@pytest.mark.parametrize(("seconds", "label"), [(5, "5s"), (30, "30s"), (120, "2m"),
                                                 (600, "10m"), (3600, "1h"), (0.5, "0.5s"),
                                                 (90, "90s")])
def test_tier_labels_read_like_durations(seconds: float, label: str) -> None:
    assert tier_label(seconds) == label


def test_a_first_failure_waits_in_the_first_tiers_delay_queue() -> None:
    step = policy().plan({}, FAILED, NOW)
    assert isinstance(step, Delay)
    assert step.seconds in (5.0, 30.0)  # 5 s with jitter in [2.5, 7.5) rounds up to 5 or 30
    assert step.queue == f"zenoti.h.package-status.retry.{tier_label(step.seconds)}"
    assert step.headers[ATTEMPT] == 2
    assert step.headers[FIRST_FAILURE] == NOW.isoformat()


def test_the_delay_grows_with_the_attempt_and_stops_at_the_last_tier() -> None:
    chosen = []
    for attempt in range(1, 10):
        step = policy().plan({ATTEMPT: attempt}, FAILED, NOW)
        assert isinstance(step, Delay)
        chosen.append(step.seconds)
    assert chosen[0] <= 30.0
    assert max(chosen[:3]) < min(chosen[-2:])
    assert chosen[-1] == 3600.0


def test_jitter_spreads_retries_of_the_same_attempt_over_tiers() -> None:
    seen = {policy(seed=s).plan({ATTEMPT: 4}, FAILED, NOW).seconds  # type: ignore[union-attr]
            for s in range(50)}
    assert len(seen) > 1


def test_retry_after_picks_the_tier_that_covers_it() -> None:
    fate = Fate(Outcome.RETRY, "rate_limited", "429", retry_after=45.0)
    step = policy().plan({ATTEMPT: 1}, fate, NOW)
    assert isinstance(step, Delay) and step.seconds == 120.0


def test_a_retry_after_beyond_every_tier_uses_the_last() -> None:
    fate = Fate(Outcome.RETRY, "rate_limited", "429", retry_after=99_999.0)
    step = policy().plan({}, fate, NOW)
    assert isinstance(step, Delay) and step.seconds == 3600.0


def test_after_max_attempts_it_gives_up_with_the_whole_history() -> None:
    headers: dict[str, object] = {}
    step: Delay | GiveUp = Delay("", 0, {})
    for _ in range(3):
        step = policy(max_attempts=3).plan(headers, FAILED, NOW)
        headers = dict(step.headers)
    assert isinstance(step, GiveUp)
    assert step.reason == "attempts_exhausted"
    history = step.headers[HISTORY]
    assert isinstance(history, list)
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert all(h["reason"] == "zenoti_unavailable" for h in history)


def test_throttling_does_not_use_up_attempts() -> None:
    fate = Fate(Outcome.RETRY, "rate_limited", "429", retry_after=10.0)
    step = policy(max_attempts=2).plan({ATTEMPT: 5}, fate, NOW)
    assert isinstance(step, Delay)


def test_after_max_age_it_gives_up_even_when_throttled() -> None:
    first = (NOW - timedelta(hours=2)).isoformat()
    fate = Fate(Outcome.RETRY, "rate_limited", "429", retry_after=10.0)
    step = policy(max_age=3600).plan({ATTEMPT: 2, FIRST_FAILURE: first}, fate, NOW)
    assert isinstance(step, GiveUp) and step.reason == "max_age_exceeded"


def test_the_first_failure_time_travels_unchanged() -> None:
    first = (NOW - timedelta(minutes=5)).isoformat()
    step = policy().plan({ATTEMPT: 2, FIRST_FAILURE: first.encode()}, FAILED, NOW)
    assert step.headers[FIRST_FAILURE] == first


def test_history_is_bounded() -> None:
    headers = {HISTORY: [{"attempt": i} for i in range(50)]}
    step = policy(max_attempts=1000).plan(headers, FAILED, NOW)
    assert len(step.headers[HISTORY]) == 20  # type: ignore[arg-type]
