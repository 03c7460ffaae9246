"""The sandbox's token bucket per API key, on a clock the tests move by hand."""

from __future__ import annotations

import pytest

from processor.dev.sandbox.budget import Budget, Grant, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_grants_capacity_calls_then_refuses() -> None:
    bucket = TokenBucket(5, 60.0, FakeClock())
    grants = [bucket.take() for _ in range(6)]
    assert [g.allowed for g in grants] == [True] * 5 + [False]
    assert [g.remaining for g in grants] == [4, 3, 2, 1, 0, 0]


def test_a_refusal_says_how_long_until_the_next_token() -> None:
    bucket = TokenBucket(5, 60.0, FakeClock())  # one token per 12 s
    for _ in range(5):
        bucket.take()
    assert bucket.take() == Grant(allowed=False, remaining=0, reset_seconds=12, retry_after=12)


def test_tokens_refill_continuously() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, 60.0, clock)
    for _ in range(60):
        bucket.take()
    clock.now += 2.5
    assert bucket.take().allowed
    assert bucket.take().allowed
    refused = bucket.take()
    assert not refused.allowed
    assert refused.retry_after == 1


def test_refill_stops_at_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, 3.0, clock)
    clock.now += 3600
    assert [bucket.take().allowed for _ in range(4)] == [True, True, True, False]


def test_peek_does_not_consume() -> None:
    bucket = TokenBucket(1, 60.0, FakeClock())
    assert bucket.peek().allowed
    assert bucket.take().allowed
    assert not bucket.peek().allowed


def test_a_full_bucket_resets_in_zero_seconds() -> None:
    assert TokenBucket(5, 60.0, FakeClock()).peek().reset_seconds == 0


def test_each_api_key_has_its_own_bucket() -> None:
    budget = Budget(1, 60.0, FakeClock())
    assert budget.take("org-a").allowed
    assert not budget.take("org-a").allowed
    assert budget.take("org-b").allowed


def test_headers_follow_zenoti() -> None:
    budget = Budget(60, 60.0, FakeClock())
    headers = budget.headers(budget.take("key"))
    assert headers == {"Organization-RateLimit-Limit": "60;w=60;b=60",
                       "RateLimit-Limit": "60;w=60;b=60", "RateLimit-Remaining": "59",
                       "RateLimit-Reset": "1"}


def test_refused_headers_carry_retry_after() -> None:
    budget = Budget(1, 30.0, FakeClock())
    budget.take("key")
    headers = budget.headers(budget.take("key"))
    assert headers["Retry-After"] == "30"
    assert headers["RateLimit-Remaining"] == "0"


@pytest.mark.parametrize(("capacity", "window"), [(0, 60.0), (5, 0.0)])
def test_a_degenerate_bucket_is_refused(capacity: int, window: float) -> None:
    with pytest.raises(ValueError):
        Budget(capacity, window)
