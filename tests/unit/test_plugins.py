"""Loading handler plugins: checked when loaded, every problem listed at once."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from processor.errors import PluginError
from processor.handler import ENTRY_POINT_GROUP
from processor.worker.plugins import check, discover, load

SAMPLES = "tests.unit.plugin_samples"


def point(name: str, attr: str) -> EntryPoint:
    return EntryPoint(name=name, value=f"{SAMPLES}:{attr}", group=ENTRY_POINT_GROUP)


def test_a_good_handler_loads_with_its_source() -> None:
    [handler] = load([point("good", "Good")])
    assert handler.name == "good"
    assert handler.source.startswith(f"{SAMPLES}:Good")


def test_every_problem_of_every_plugin_is_listed_at_once() -> None:
    points = [
        point("good", "Good"),
        point("Bad Name", "BadEverything"),
        point("needs-arguments", "NeedsArguments"),
        point("instance", "not_a_class"),
        EntryPoint(name="missing", value="no_such_module:X", group=ENTRY_POINT_GROUP),
    ]
    with pytest.raises(PluginError) as info:
        load(points)
    text = str(info.value)
    for expected in ("name must be", "event_types must be", "schema must be",
                     "handle must be an async method", "cannot be made without arguments",
                     "is a Good, not a class", "cannot import no_such_module:X"):
        assert expected in text
    assert len(info.value.problems) == 7


def test_an_entry_point_name_must_match_the_handler_name() -> None:
    with pytest.raises(PluginError, match="differs from its entry-point name 'other'"):
        load([point("other", "Good")])


def test_a_handler_registered_twice_is_refused() -> None:
    with pytest.raises(PluginError, match="registered twice"):
        load([point("good", "Good"), point("good", "Good")])


def test_enabling_a_handler_that_is_not_installed_is_refused() -> None:
    with pytest.raises(PluginError, match="nope: no installed handler"):
        load([point("good", "Good")], enabled=["good", "nope"])


def test_enabled_selects_a_subset() -> None:
    assert load([point("good", "Good")], enabled=["good"])[0].name == "good"


@pytest.mark.parametrize("name", ["good\n", "good\nevil", "-good", "g" * 64])
def test_a_handler_name_is_checked_whole_a_trailing_newline_included(name: str) -> None:
    from tests.unit.plugin_samples import Good

    renamed = type("Renamed", (Good,), {"name": name})
    assert check(renamed, name) == [
        f"name must be lower-case letters, digits and '-' (got {name!r})"]


def test_check_passes_a_conforming_class() -> None:
    from tests.unit.plugin_samples import Good

    assert check(Good, "good") == []


def test_the_built_in_handlers_are_installed_and_pass_their_checks() -> None:
    names = {h.name for h in discover()}
    assert {"membership-freeze", "guestpass-redeemed", "package-status"} <= names
