"""The sandbox's synthetic organisation: deterministic per seed, and linked like Zenoti's."""

from __future__ import annotations

import uuid

import pytest

from processor.dev.sandbox import Organisation
from processor.dev.sandbox.organisation import BASE_DATE


def _fingerprint(org: Organisation) -> tuple[object, ...]:
    return (tuple(org.centers.values()), tuple(org.guests.values()),
            tuple(org.invoices.values()), org.memberships, org.packages)


def test_the_same_seed_generates_the_same_organisation() -> None:
    assert _fingerprint(Organisation.generate(7)) == _fingerprint(Organisation.generate(7))


def test_another_seed_generates_other_ids() -> None:
    assert set(Organisation.generate(7).guests).isdisjoint(Organisation.generate(8).guests)


def test_default_sizes_are_three_centers_and_three_hundred_guests() -> None:
    org = Organisation.generate(1)
    assert len(org.centers) == 3
    assert len(org.guests) == 300
    assert len(org.memberships) == 150
    assert len(org.packages) == 150


def test_ids_are_lower_case_version_4_uuids() -> None:
    org = Organisation.generate(1)
    ids = [*org.centers, *org.guests, *org.invoices, *(m.id for m in org.memberships),
           *(p.id for p in org.packages)]
    for value in ids:
        assert value == value.lower()
        assert uuid.UUID(value).version == 4


def test_a_memberships_group_id_is_its_sale_invoice_whose_guest_is_the_member() -> None:
    org = Organisation.generate(1)
    for membership in org.memberships:
        invoice = org.invoices[membership.invoice_id]
        assert invoice.guest_id == membership.guest_id
        assert invoice.center_id == membership.center_id


def test_a_packages_invoice_is_its_sale_whose_guest_is_the_owner() -> None:
    org = Organisation.generate(1)
    for package in org.packages:
        assert org.invoices[package.invoice_id].guest_id == package.guest_id


def test_guest_pass_counts_are_small_and_consistent() -> None:
    org = Organisation.generate(1)
    for membership in org.memberships:
        assert 0 <= membership.guestpass_balance <= membership.guestpass_total <= 6
        for redemption in membership.redemptions:
            assert org.invoices[redemption.invoice_id].guest_id == membership.guest_id
            assert redemption.id == redemption.id.upper()


def test_some_memberships_are_frozen_and_report_recurrence_status_3() -> None:
    org = Organisation.generate(1)
    frozen = [m for m in org.memberships if m.freeze is not None]
    assert frozen
    assert {(m.status, m.recurrence_status) for m in frozen} == {(1, 3)}


def test_lists_per_guest_only_hold_what_was_sold_at_that_center() -> None:
    org = Organisation.generate(1)
    membership = org.memberships[0]
    listed = org.memberships_of(membership.guest_id.upper(), membership.center_id.upper())
    assert membership in listed
    assert all(m.center_id == membership.center_id for m in listed)
    others = [c for c in org.centers if c != membership.center_id]
    assert all(membership not in org.memberships_of(membership.guest_id, c) for c in others)


def test_lookups_ignore_case_and_answer_none_for_strangers() -> None:
    org = Organisation.generate(1)
    guest = next(iter(org.guests.values()))
    assert org.guest(guest.id.upper()) == guest
    assert org.guest(str(uuid.uuid4())) is None
    assert org.invoice("nope") is None
    assert org.center("nope") is None


def test_an_empty_organisation_is_refused() -> None:
    with pytest.raises(ValueError):
        Organisation.generate(1, guests=0)


def test_every_freeze_was_made_today_in_opening_hours() -> None:
    org = Organisation.generate(1)
    for membership in org.memberships:
        if membership.freeze is None:
            assert membership.frozen_at is None
        else:
            assert membership.frozen_at is not None
            assert (membership.frozen_at.date(), 8 <= membership.frozen_at.hour < 20) == (
                BASE_DATE.date(), True)
