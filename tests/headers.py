"""Header values as assertions expect them. AMQP types a header as any field value (text,
number, table, list, ...); a test that reads a list of tables (the retry history, the broker's
``x-death``) or a text says so with these, and fails on anything else."""

from __future__ import annotations

from typing import Any


def tables(value: object) -> list[dict[str, Any]]:
    """``value``, which must be a list of tables."""
    assert isinstance(value, list), f"not a list: {value!r}"
    entries = [entry for entry in value if isinstance(entry, dict)]
    assert len(entries) == len(value), f"not a list of tables: {value!r}"
    return entries


def text(value: object) -> str:
    """``value``, which must be a text."""
    assert isinstance(value, str), f"not a text: {value!r}"
    return value
