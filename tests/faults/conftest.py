"""Fixtures of the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import FaultStack


@pytest.fixture
def stacks() -> Iterator[list[FaultStack]]:
    """The stacks a test starts (append them): every process stopped after, pass or fail."""
    made: list[FaultStack] = []
    yield made
    for stack in made:
        stack.stop()
