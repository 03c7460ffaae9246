"""The realistic day: most guests once, correlated bursts, the mix asked for, by seed."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from processor.dev.deliveries import FREEZE, GUESTPASS, PACKAGE_REDEMPTION, PACKAGE_STATUS
from processor.dev.sandbox import Organisation
from processor.dev.sandbox.day import Day, apportion, parse_mix, plan_day

BIG = Organisation.generate(1, guests=20_000, centers=20)
DAY = plan_day(BIG, 5000, seed=1)


def _data(day: Day, index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(day.deliveries[index].body)["data"]
    return data


def _moment(day: Day, index: int) -> datetime:
    stamp = json.loads(day.deliveries[index].body)["event_timestamp"]
    return datetime.fromisoformat(stamp[:26])


def test_most_deliveries_of_the_default_day_concern_a_guest_seen_once() -> None:
    assert len(DAY.deliveries) == 5000
    assert DAY.once_seen_share() >= 0.7
    assert len(set(DAY.guests)) > 4000


def test_a_twenty_thousand_guest_organisation_and_its_day_take_seconds() -> None:
    started = time.perf_counter()
    plan_day(Organisation.generate(2, guests=20_000, centers=20), 5000, seed=2)
    assert time.perf_counter() - started < 20


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_ones() -> None:
    again = plan_day(BIG, 5000, seed=1)
    assert [d.body for d in again.deliveries] == [d.body for d in DAY.deliveries]
    assert plan_day(BIG, 200, seed=2).deliveries[0] != DAY.deliveries[0]


def test_deliveries_are_in_time_order_with_unique_ids_over_the_opening_hours() -> None:
    moments = [_moment(DAY, i) for i in range(len(DAY.deliveries))]
    assert moments == sorted(moments)
    assert (moments[0].hour, moments[-1].hour) == (8, 19)
    assert len({d.event_id for d in DAY.deliveries}) == 5000


def test_a_package_redeemed_has_its_status_updated_within_a_minute() -> None:
    pairs = [(a, b) for a, b in DAY.bursts if DAY.kinds[a] == "package"]
    assert len(pairs) > 100
    for first, second in pairs:
        types = (DAY.deliveries[first].event_type, DAY.deliveries[second].event_type)
        assert types == (PACKAGE_REDEMPTION, PACKAGE_STATUS)
        assert _data(DAY, first)["user_package_id"] == _data(DAY, second)["user_package_id"]
        assert _data(DAY, first)["service_redemptions"][0]["usage_date"][10] == " "
        assert 0 < (_moment(DAY, second) - _moment(DAY, first)).total_seconds() < 60


def test_a_member_and_their_guest_redeem_two_passes_of_one_membership_together() -> None:
    pairs = [(a, b) for a, b in DAY.bursts if DAY.kinds[a] == "guestpass"]
    assert len(pairs) > 100
    for first, second in pairs:
        one, two = _data(DAY, first), _data(DAY, second)
        assert DAY.deliveries[first].event_type == DAY.deliveries[second].event_type == GUESTPASS
        assert one["user_membership_id"] == two["user_membership_id"]
        assert abs(one["used"] - two["used"]) == 1
        assert 0 <= (_moment(DAY, second) - _moment(DAY, first)).total_seconds() < 60


def test_deliveries_name_records_of_the_organisation() -> None:
    memberships = {m.id: m for m in BIG.memberships}
    packages = {p.id: p for p in BIG.packages}
    for index, delivery in enumerate(DAY.deliveries[:500]):
        data = _data(DAY, index)
        if delivery.event_type == FREEZE:
            owner = memberships[data["user_membership_id"]].guest_id
            assert BIG.invoices[data["group_user_membership_id"]].guest_id == owner
        elif delivery.event_type == GUESTPASS:
            owner = memberships[data["user_membership_id"]].guest_id
        else:
            owner = packages[data["user_package_id"]].guest_id
        assert DAY.guests[index] == owner


@pytest.mark.parametrize(("mix", "expected"), [
    ("freeze=0.4,guestpass=0.3,package=0.3", {"freeze": 400, "guestpass": 300, "package": 300}),
    ("freeze", {"freeze": 1000}),
    ("guestpass=1,package=3", {"guestpass": 250, "package": 750}),
])
def test_the_mix_is_honoured(mix: str, expected: dict[str, int]) -> None:
    day = plan_day(BIG, 1000, seed=3, mix=parse_mix(mix))
    assert Counter(day.kinds) == expected
    assert {d.event_type for d in day.deliveries} <= {FREEZE, GUESTPASS, PACKAGE_STATUS,
                                                      PACKAGE_REDEMPTION}


def test_a_small_organisation_repeats_its_guests_to_fill_the_day() -> None:
    day = plan_day(Organisation.generate(1, guests=300, centers=3), 5000, seed=7)
    assert len(day.deliveries) == 5000
    assert day.once_seen_share() < 0.1
    assert day.handled() == sum(d.event_type != PACKAGE_REDEMPTION for d in day.deliveries)


@pytest.mark.parametrize(("text", "problem"), [
    ("freeze=0.5,spa=0.5", "unknown kind 'spa'"),
    ("freeze=x", "not a number"),
    ("freeze=-1,package=2", "must be >= 0"),
    ("freeze=0", "no kind"),
    ("freeze=1,freeze=2", "twice"),
])
def test_a_bad_mix_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_mix(text)


def test_shares_are_apportioned_to_whole_deliveries_summing_to_the_count() -> None:
    assert apportion(5000, parse_mix("freeze,guestpass,package")) == {
        "freeze": 1667, "guestpass": 1667, "package": 1666}
    assert sum(apportion(7, parse_mix("freeze=0.5,package=0.5")).values()) == 7


def test_a_freeze_is_sent_when_it_was_made() -> None:
    memberships = {m.id: m for m in BIG.memberships}
    freezes = [i for i, d in enumerate(DAY.deliveries) if d.event_type == FREEZE]
    for index in freezes[:300]:
        membership = memberships[_data(DAY, index)["user_membership_id"]]
        assert _moment(DAY, index) == membership.frozen_at
