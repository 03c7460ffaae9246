"""Webhook ``data`` bodies about an organisation's records (REFERENCE 3.1, 3.4, 3.6, 3.7).

Each function returns the ``data`` of one event type, naming only records of ``org`` (and,
for event types no handler serves, a few ids drawn from ``rng``). Shapes follow Zenoti's
doc samples, including what they lack: Freeze and package events carry no ``guest_id``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from processor.dev.sandbox.organisation import Organisation, new_id
from processor.dev.sandbox.payloads import Json, center_ref, membership_base, when
from processor.dev.sandbox.records import GuestpassRedemption, Membership, Package


def membership_freeze(org: Organisation, record: Membership) -> Json:
    """``Guest.Membership.Freeze``; ``record`` should be frozen (its freeze is reported)."""
    freeze = record.freeze
    return {
        **membership_base(org, record),
        "next_collection_date": when(record.next_collection_date),
        "freeze": None if freeze is None else {
            "start_date": when(freeze.start_date), "end_date": when(freeze.end_date),
            "type": freeze.type, "fee": freeze.fee, "fee_type": 1,
            "comments": "Guest travelling", "froze_by": "Front Desk"},
    }


def membership_reinstate(org: Organisation, record: Membership) -> Json:
    """A cut-down ``Guest.Membership.Reinstate``: no handler serves it."""
    sale = org.invoices[record.invoice_id]
    return {
        **membership_base(org, record),
        "is_refunded": False,
        "invoice": {"id": sale.id, "no": sale.number, "receipt_no": sale.receipt_number,
                    "status": 4},
        "membership": {"id": record.plan.id, "name": record.plan.name, "code": record.plan.code,
                       "type": record.plan.type},
    }


def guestpass_redeemed(record: Membership, redemption: GuestpassRedemption) -> Json:
    """``Guestpass.redeemed``: balances as they stood right after ``redemption``."""
    return {
        "id": redemption.id,
        "date": when(redemption.date),
        "guestpass_id": record.guestpass_id,
        "guest_id": record.guest_id,
        "session_id": redemption.session_id,
        "invoice_id": redemption.invoice_id,
        "user_membership_id": record.id,
        "membership": {"id": record.plan.id, "name": record.plan.name},
        "is_category": True,
        "total": record.guestpass_total,
        "balance": record.guestpass_total - redemption.used_after,
        "used": redemption.used_after,
        "transferred": 0,
        "expired": 0,
        "frequency": "Any",
    }


def package_status(org: Organisation, record: Package) -> Json:
    """``Guest.Package.StatusUpdate``: the package base shared by all five package events."""
    sale = org.invoices[record.invoice_id]
    plan = record.plan
    return {
        "user_package_id": record.id,
        "status": record.status,
        "user_package_state": 0,
        "invoice": {"status": 4, "receipt_no": sale.receipt_number, "id": sale.id,
                    "no": sale.number},
        "package": {"code": plan.code, "is_OTP_required": False, "type": plan.type,
                    "id": plan.id, "name": plan.name},
        "purchase": {"price": {"currency_id": org.centers[sale.center_id].currency_id,
                               "sales": sale.net_price, "tax": sale.tax,
                               "final": sale.sum_total},
                     "date": when(sale.invoice_date)},
        "date": {"end_date_with_grace": when(record.end + timedelta(days=record.grace_days)),
                 "start": when(record.start), "end": when(record.end)},
        "schedule": {"completed_schedules": None, "next_schedule_date": None},
        "center": center_ref(org.centers[record.center_id]),
        "is_refunded": False,
        "sale_invoice": {"id": sale.id, "no": sale.number},
        "lookup_package_user_id": None,
        "start_validity_at_first_redemption": False,
        "never_expires": False,
        "has_first_redemption": any(service.used for service in record.services),
        "expiration_days": (record.end - record.start).days,
    }


def package_redemption(org: Organisation, record: Package, moment: datetime,
                       rng: random.Random) -> Json:
    """A ``Guest.Package.Redemption``: the package base plus one service redeemed at
    ``moment`` on a booking invoice drawn from ``rng`` (no handler serves it)."""
    service = rng.choice(record.services)
    center = center_ref(org.centers[record.center_id])
    booking = new_id(rng)
    return {
        **package_status(org, record),
        "service_redemptions": [{
            "invoice": {"status": 4, "id": booking, "no": f"R{rng.randint(10_000, 99_999)}",
                        "item_id": new_id(rng)},
            "service": {"id": service.id, "name": service.name},
            "service_type_info": {"service_category_type": 0, "id": service.id,
                                  "name": service.name},
            "therapist": {"id": new_id(rng), "name": "Sam Rivera"},
            # Zenoti writes this one date with a space and milliseconds (REFERENCE 3.7).
            "usage_date": f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}",
            "center": center,
        }],
        "product_redemptions": [],
    }


def appointment_started(org: Organisation, rng: random.Random) -> Json:
    """A small ``Appointment.Started`` on one of ``org``'s invoices: no handler serves it."""
    sale = rng.choice(list(org.invoices.values()))
    start = sale.invoice_date + timedelta(hours=1)
    return {
        "invoice_id": sale.id, "invoice_number": sale.number,
        "appointment_group_id": new_id(rng), "center_id": sale.center_id,
        "appointments": [{
            "id": new_id(rng), "service_name": "Swedish Massage 60", "service_id": new_id(rng),
            "start_time": when(start), "end_time": when(start + timedelta(hours=1)),
            "therapist_name": "Sam Rivera", "appointment_progress": 1,
        }],
    }


def class_booking_approved(org: Organisation, rng: random.Random) -> Json:
    """A small ``Class.Booking.Approved`` for one of ``org``'s guests: no handler serves it."""
    guest = rng.choice(list(org.guests.values()))
    return {
        "workshop_id": rng.randint(1000, 9999), "class_id": rng.randint(1000, 9999),
        "session_id": rng.randint(10_000, 99_999), "guest_id": guest.id,
        "center_id": guest.center_id, "registration_id": rng.randint(100_000, 999_999),
        "waitlist": False, "booking_source": 1, "is_recurring": False,
    }
