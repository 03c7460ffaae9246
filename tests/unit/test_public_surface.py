"""The public surface for plugin authors is deliberate, sorted, and importable."""

from __future__ import annotations

import pytest

import processor
import processor.handler


def test_all_is_sorted_and_every_name_exists() -> None:
    assert processor.__all__ == sorted(processor.__all__)
    for name in processor.__all__:
        assert hasattr(processor, name), name


def test_the_public_surface_is_what_plugins_need() -> None:
    assert set(processor.__all__) == {
        "Context", "Event", "Handler", "HandlingError", "InvalidPayload", "PermanentError",
        "RateLimited", "ResourceNotFound", "TransientError", "ZenotiEventsError",
        "ZenotiApi", "ZenotiUnavailable",
    }


def test_the_root_imports_its_names_on_first_use_and_names_only_those() -> None:
    assert processor.Context is processor.handler.Context
    assert set(processor.__all__) <= set(dir(processor))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        processor.Nope  # noqa: B018
