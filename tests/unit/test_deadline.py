"""A deadline for one await: the contract of asyncio.timeout, at less cost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from processor.worker.deadline import DeadlineExceeded, within


async def test_a_call_that_finishes_in_time_gives_its_result_and_leaves_no_cancel() -> None:
    assert await within(1.0, asyncio.sleep(0, result="done")) == "done"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # a timer left behind would cancel this


async def test_a_call_past_its_deadline_is_cancelled_and_named() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(DeadlineExceeded, match=r"within 0\.02 s"):
        await within(0.02, slow())
    assert cancelled.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # the task is usable afterwards


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def waits() -> None:
        started.set()
        await within(10.0, asyncio.sleep(10))

    task = asyncio.create_task(waits())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_call_that_swallows_the_cancel_leaves_no_cancel_request() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    assert await within(0.01, stubborn()) == "swallowed"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)


async def test_a_cancel_requested_before_the_deadline_does_not_hide_the_timeout() -> None:
    async def runs_with_a_stale_request() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # requested from elsewhere earlier, and already delivered:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        assert task.cancelling() == 1  # still counted (asyncio.timeout compares likewise)
        with pytest.raises(DeadlineExceeded):
            await within(0.01, asyncio.sleep(10))
        assert task.cancelling() == 1

    await asyncio.create_task(runs_with_a_stale_request())
