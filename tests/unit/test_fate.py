"""A message's fate is decided by exception type, in one place."""

from __future__ import annotations

import pytest

from processor.errors import (
    HandlingError,
    InvalidPayload,
    PermanentError,
    RateLimited,
    ResourceNotFound,
    TransientError,
    ZenotiUnavailable,
)
from processor.fate import Outcome, decide


def test_success_is_acked() -> None:
    assert decide(None).outcome is Outcome.ACK


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (InvalidPayload("data.x: Field required"), "invalid_payload"),
        (ResourceNotFound("invoice i1 not found"), "resource_not_found"),
        (PermanentError("nope"), "permanent"),
    ],
)
def test_permanent_errors_are_dead_lettered_with_their_reason(exc: Exception, reason: str) -> None:
    fate = decide(exc)
    assert fate.outcome is Outcome.DEAD_LETTER
    assert fate.reason == reason
    assert str(exc) in fate.detail


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ZenotiUnavailable("503"), "zenoti_unavailable"),
        (TransientError("later"), "transient"),
        (HandlingError("odd"), "handling_error"),
        (KeyError("bug"), "unexpected_error"),
        (ConnectionResetError(), "unexpected_error"),
    ],
)
def test_transient_and_unexpected_errors_are_retried(exc: Exception, reason: str) -> None:
    fate = decide(exc)
    assert fate.outcome is Outcome.RETRY
    assert fate.reason == reason


def test_rate_limiting_is_retried_carrying_retry_after() -> None:
    fate = decide(RateLimited("429", retry_after=12.0))
    assert fate.outcome is Outcome.RETRY
    assert fate.retry_after == 12.0


def test_details_are_bounded_in_length() -> None:
    assert len(decide(PermanentError("x" * 10_000)).detail) == 1000
