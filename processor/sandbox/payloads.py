"""The JSON bodies the sandbox answers with: Zenoti's shapes (REFERENCE 4.5, 5.1-5.5).

Each function takes records and returns a plain dict ready for ``json.dumps``. Shapes are
the contract the project's Zenoti client is written against, so change them only with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from processor.sandbox.organisation import Organisation
from processor.sandbox.records import Center, Guest, Invoice, Membership, Package

Json = dict[str, Any]


def error(code: int, message: str, **nulls: None) -> Json:
    """Zenoti's error body ``{"error": {"code", "message"}}``, plus wrapper keys set to null."""
    return {**nulls, "error": {"code": code, "message": message}}


def when(value: datetime | None) -> str | None:
    """A naive ISO datetime the way Zenoti writes it: ``2026-03-02T00:00:00``."""
    return value.isoformat(timespec="seconds") if value else None


def invoice(org: Organisation, record: Invoice) -> Json:
    guest = org.guests[record.guest_id]
    return {
        "invoice": {
            "id": record.id,
            "invoice_number": record.number,
            "receipt_number": record.receipt_number,
            "center_id": record.center_id,
            "is_closed": True,
            "invoice_date": when(record.invoice_date),
            "total_price": {"currency_id": org.centers[record.center_id].currency_id,
                            "net_price": record.net_price, "tax": record.tax,
                            "sum_total": record.sum_total},
            "guest": {"id": guest.id, "first_name": guest.first_name,
                      "last_name": guest.last_name, "email": guest.email},
            "invoice_items": [{"id": i.id, "name": i.name, "type": i.type} for i in record.items],
        },
        "error": None,
    }


def guest(org: Organisation, record: Guest) -> Json:
    """The guest at the top level, unwrapped (REFERENCE 5.1)."""
    return {
        "id": record.id,
        "code": record.code,
        "center_id": record.center_id,
        "center_name": org.centers[record.center_id].name,
        "created_date": when(record.created_date),
        "personal_info": {
            "first_name": record.first_name, "last_name": record.last_name,
            "email": record.email,
            "mobile_phone": {"country_code": 1, "number": record.phone},
            "gender": record.gender, "date_of_birth": when(record.date_of_birth),
        },
        "preferences": {"receive_marketing_email": True, "receive_marketing_sms": False,
                        "receive_transactional_email": True, "receive_transactional_sms": True},
        "error": None,
    }


def center_ref(center: Center) -> Json:
    return {"id": center.id, "name": center.name}


def membership_base(org: Organisation, record: Membership) -> Json:
    """The fields a membership shows both in the API's lists and in its webhooks."""
    return {
        "user_membership_id": record.id,
        "group_user_membership_id": record.invoice_id,
        "status": record.status,
        "recurrence_status": record.recurrence_status,
        "expiry_date": when(record.expiry_date),
        "member_code": record.member_code,
        "center": center_ref(org.centers[record.center_id]),
    }


def membership_item(org: Organisation, record: Membership) -> Json:
    freeze = record.freeze
    return {
        **membership_base(org, record),
        "next_collection_date": when(record.next_collection_date),
        "membership": {"id": record.plan.id, "name": record.plan.name, "code": record.plan.code,
                       "type": record.plan.type, "guestpass_total": record.guestpass_total,
                       "guestpass_balance": record.guestpass_balance},
        "invoice": {"id": record.invoice_id, "no": org.invoices[record.invoice_id].number},
        "freeze": None if freeze is None else {
            "start_date": when(freeze.start_date), "end_date": when(freeze.end_date),
            "type": freeze.type, "fee": freeze.fee},
    }


def memberships(org: Organisation, records: list[Membership]) -> Json:
    return {"guest_memberships": [membership_item(org, m) for m in records], "error": None}


def package_item(org: Organisation, record: Package) -> Json:
    sale = org.invoices[record.invoice_id]
    return {
        "user_package_id": record.id,
        "status": record.status,
        "user_package_state": 0,
        "invoice": {"id": sale.id, "no": sale.number, "status": 4,
                    "receipt_no": sale.receipt_number},
        "package": {"id": record.plan.id, "name": record.plan.name, "code": record.plan.code,
                    "type": record.plan.type},
        "date": {"start": when(record.start), "end": when(record.end),
                 "end_date_with_grace": when(record.end + timedelta(days=record.grace_days))},
        "center": center_ref(org.centers[record.center_id]),
        "services": [{"id": s.id, "name": s.name, "total": s.total, "used": s.used,
                      "balance": s.balance} for s in record.services],
    }


def packages(org: Organisation, records: list[Package]) -> Json:
    return {
        "packages": [package_item(org, p) for p in records],
        "page_info": {"total": len(records), "page": 1, "size": 100},
        "error": None,
    }


def center(record: Center) -> Json:
    return {
        "center": {"id": record.id, "name": record.name, "code": record.code,
                   "time_zone_id": record.time_zone_id, "currency_id": record.currency_id},
        "error": None,
    }
