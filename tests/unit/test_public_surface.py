"""The public surface for plugin authors is deliberate, sorted, and importable."""

from __future__ import annotations

import processor


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
