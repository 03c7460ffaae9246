"""Planning a retry: tiers, backoff with jitter, Retry-After, and when to give up."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from structlog.testing import capture_logs

from processor.broker.topology import tier_label
from processor.errors import BudgetExhausted, RateLimited
from processor.fate import Fate, Outcome, decide
from processor.message import ATTEMPT, FIRST_FAILURE, HISTORY
from processor.settings import RetryLimits
from processor.worker.retry import Delay, GiveUp, RetryPolicy
from tests.headers import tables

TIERS = (5.0, 30.0, 120.0, 600.0, 3600.0)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FAILED = Fate(Outcome.RETRY, "zenoti_unavailable", "ZenotiUnavailable: 503")


def policy(max_attempts: int = 10, max_age: float = 86_400.0, seed: int = 1) -> RetryPolicy:
    return RetryPolicy("package-status", TIERS, RetryLimits(max_attempts=max_attempts,
                                                             max_age_seconds=max_age),
                       rng=random.Random(seed))


def seconds(step: Delay | GiveUp) -> float:
    """How long ``step`` waits; it must be a delay, not a give-up."""
    assert isinstance(step, Delay), step
    return step.seconds


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
    seen = {seconds(policy(seed=s).plan({ATTEMPT: 4}, FAILED, NOW)) for s in range(50)}
    assert len(seen) > 1


def test_retry_after_picks_the_tier_that_covers_it() -> None:
    fate = decide(RateLimited("429", retry_after=45.0))
    step = policy().plan({ATTEMPT: 1}, fate, NOW)
    assert isinstance(step, Delay) and step.seconds == 120.0


def test_a_retry_after_beyond_every_tier_uses_the_last() -> None:
    fate = decide(RateLimited("429", retry_after=99_999.0))
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
    history = tables(step.headers[HISTORY])
    assert [h["attempt"] for h in history] == [1, 2, 3]
    assert all(h["reason"] == "zenoti_unavailable" for h in history)


def test_throttling_does_not_use_up_attempts() -> None:
    fate = decide(RateLimited("429", retry_after=10.0))
    step = policy(max_attempts=2).plan({ATTEMPT: 5}, fate, NOW)
    assert isinstance(step, Delay)


def test_after_max_age_it_gives_up_even_when_throttled() -> None:
    first = (NOW - timedelta(hours=2)).isoformat()
    fate = decide(RateLimited("429", retry_after=10.0))
    step = policy(max_age=3600).plan({ATTEMPT: 2, FIRST_FAILURE: first}, fate, NOW)
    assert isinstance(step, GiveUp) and step.reason == "max_age_exceeded"


def test_the_first_failure_time_travels_unchanged() -> None:
    first = (NOW - timedelta(minutes=5)).isoformat()
    step = policy().plan({ATTEMPT: 2, FIRST_FAILURE: first.encode()}, FAILED, NOW)
    assert step.headers[FIRST_FAILURE] == first


def test_history_is_bounded() -> None:
    headers = {HISTORY: [{"attempt": i} for i in range(50)]}
    step = policy(max_attempts=1000).plan(headers, FAILED, NOW)
    assert len(tables(step.headers[HISTORY])) == 20


def skewed(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).isoformat()


def test_a_first_failure_stamped_by_a_clock_ahead_within_the_skew_travels_and_ages_from_zero() -> (
    None
):
    fate = decide(RateLimited("429", retry_after=10.0))
    step = policy(max_age=60).plan({ATTEMPT: 2, FIRST_FAILURE: skewed(200)}, fate, NOW)
    assert isinstance(step, Delay)  # age 0, not -200 s, and not treated as a wrong stamp
    assert step.headers[FIRST_FAILURE] == skewed(200)


def test_a_first_failure_further_ahead_than_the_skew_counts_as_now_and_is_logged_once() -> None:
    retry = RetryPolicy("package-status", TIERS, RetryLimits(max_age_seconds=3600),
                        clock_skew=300.0)
    with capture_logs() as logged:
        steps = [retry.plan({ATTEMPT: 2, FIRST_FAILURE: skewed(86_400 * 365)}, FAILED, NOW)
                 for _ in range(5)]
    assert all(step.headers[FIRST_FAILURE] == NOW.isoformat() for step in steps)
    warned = [e for e in logged if e["event"] == "retry.first_failure_in_future"]
    assert len(warned) == 1 and warned[0]["tolerated_seconds"] == 300.0
    # Rewritten to now, it ages from here on: an hour later the message gives up.
    later = retry.plan(steps[0].headers, FAILED, NOW + timedelta(hours=1, seconds=1))
    assert isinstance(later, GiveUp) and later.reason == "max_age_exceeded"


def test_a_zero_skew_trusts_no_clock_ahead_of_ours() -> None:
    retry = RetryPolicy("package-status", TIERS, RetryLimits(), clock_skew=0.0)
    step = retry.plan({FIRST_FAILURE: skewed(1)}, FAILED, NOW)
    assert step.headers[FIRST_FAILURE] == NOW.isoformat()


@pytest.mark.parametrize("stamp", [
    "2026-11-21T12:00:00",  # naive: read as UTC
    (NOW - timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-8))).isoformat(),
])
def test_first_failure_stamps_in_any_zone_age_the_same(stamp: str) -> None:
    fate = decide(RateLimited("429", retry_after=10.0))
    step = policy(max_age=600).plan({FIRST_FAILURE: stamp}, fate, NOW + timedelta(seconds=601))
    assert isinstance(step, GiveUp) and step.reason == "max_age_exceeded"


@pytest.mark.parametrize("headers", [
    {ATTEMPT: "abc", FIRST_FAILURE: "yesterday"},
    {ATTEMPT: 10**12, FIRST_FAILURE: b"\xff\xfe"},
    {ATTEMPT: -5, FIRST_FAILURE: "0001-01-01T00:00:00+01:00"},
    {ATTEMPT: True, FIRST_FAILURE: 12345, HISTORY: "not a list"},
])
def test_malformed_retry_headers_never_break_planning(headers: dict[str, object]) -> None:
    fate = decide(RateLimited("429"))  # no Retry-After: backoff by attempt
    step = policy().plan(headers, fate, NOW)
    assert isinstance(step, Delay) and step.seconds in TIERS
    attempt = step.headers[ATTEMPT]
    assert isinstance(attempt, int) and attempt >= 2


def test_a_budget_wait_picks_the_tiers_around_it_so_that_the_delay_is_right_on_average() -> None:
    fate = decide(BudgetExhausted("no token", retry_after=70.0))
    chosen = [seconds(policy(seed=s).plan({}, fate, NOW)) for s in range(400)]
    assert set(chosen) == {30.0, 120.0}  # the tiers around 70 s, never further
    assert sum(chosen) / len(chosen) == pytest.approx(70.0, rel=0.15)


def test_a_budget_wait_never_takes_a_tier_more_than_twice_as_long() -> None:
    fate = decide(BudgetExhausted("no token", retry_after=50.0))
    assert {seconds(policy(seed=s).plan({}, fate, NOW)) for s in range(100)} == {30.0}


def test_a_budget_wait_beyond_or_below_every_tier_uses_the_nearest() -> None:
    for retry_after, tier in ((99_999.0, 3600.0), (0.3, 5.0), (30.0, 30.0)):
        fate = Fate(Outcome.RETRY, "budget_exhausted", "", retry_after=retry_after)
        assert {seconds(policy(seed=s).plan({}, fate, NOW)) for s in range(50)} == {tier}
