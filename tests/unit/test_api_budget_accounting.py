"""The budget benchmark's accounting: a bounded run says where every delivery ended."""

from __future__ import annotations

import pytest

from bench.api_budget import Result, account, summarise, tiers
from processor.dev.deliveries import KNOWN_TYPES
from processor.dev.sandbox import Organisation
from processor.dev.sandbox.day import parse_mix, plan_day
from processor.dev.simulator import SimulatorReport

DAY = plan_day(Organisation.generate(3, guests=400, centers=2), 40, seed=3,
               mix=parse_mix("guestpass=0.5,package=0.5"))
HANDLED = [d.event_id for d in DAY.deliveries if d.event_type in KNOWN_TYPES]


def _key(event_id: str) -> str:
    return f"default:{event_id}"


def _result(mix: dict[str, float] | None = None) -> Result:
    return Result("shipped", 400, 2, 3, mix or {"guestpass": 0.5, "package": 0.5}, 3, 6.0)


def test_queued_and_unsent_deliveries_are_not_lost_but_vanished_ones_are() -> None:
    enriched, queued, dead, vanished, refused = (HANDLED[:10], HANDLED[10:20], HANDLED[20:22],
                                                 HANDLED[22:24], HANDLED[24:25])
    report = SimulatorReport(accepted_ids=enriched + queued + dead + vanished,
                             failed_ids=refused)
    result = _result()
    account(result, DAY, report, {_key(i): 1.0 for i in enriched},
            {_key(i) for i in queued}, {_key(i) for i in dead})
    assert (result.enriched, result.queued, result.dead_lettered) == (10, 10, 2)
    assert result.lost == 3  # accepted and nowhere, or refused for good
    assert result.unsent == len(HANDLED) - 25
    assert result.handled == len(HANDLED) < result.deliveries == 40
    assert not result.finished


def test_an_event_enriched_and_still_queued_counts_once_as_enriched() -> None:
    report = SimulatorReport(accepted_ids=list(HANDLED))
    result = _result()
    seen = {_key(i): float(n) for n, i in enumerate(HANDLED)}
    account(result, DAY, report, seen, {_key(HANDLED[0])}, set())
    assert (result.enriched, result.queued, result.lost, result.finished) == (
        len(HANDLED), 0, 0, True)
    assert sum(k["enriched"] for k in result.by_kind.values()) == len(HANDLED)


def test_a_mix_of_one_kind_names_it_and_calls_count_every_request() -> None:
    result = _result({"package": 1.0})
    account(result, DAY, SimulatorReport(accepted_ids=HANDLED[:4]),
            {_key(i): 2.0 for i in HANDLED[:4]}, set(), set())
    result.windows = [{"t": 6.0, "dt": 6.0, "calls": 60, "enriched": 4, "backlog": 3},
                      {"t": 12.0, "dt": 6.0, "calls": 30, "enriched": 0, "backlog": 0}]
    summarise(result, {"calls": 90, "throttled": 0, "by_endpoint": {"guest": 90, "centers": 0}})
    assert result.kind == "package"
    assert (result.calls_per_event, result.utilisation_during_backlog) == (22.5, 1.0)
    assert result.calls_by_endpoint == {"guest": 90}


@pytest.mark.parametrize(("window", "expected"), [(60.0, [5.0, 30.0, 120.0, 600.0]),
                                                  (6.0, [0.5, 3.0, 12.0, 60.0])])
def test_delay_tiers_are_compressed_with_the_budget_window(
    window: float, expected: list[float]
) -> None:
    assert tiers(window) == expected
