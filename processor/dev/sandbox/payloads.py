"""The JSON bodies the sandbox answers with: Zenoti's shapes (REFERENCE 4.5, 5.1-5.5, 5.8).

Each function takes records and returns a plain dict ready for ``json.dumps``. Shapes are
the contract the project's Zenoti client is written against, so change them only with it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from processor.dev.sandbox.organisation import Organisation
from processor.dev.sandbox.records import Center, Guest, Invoice, Membership, Package

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


# Center-wide lists (the bulk notes beside REFERENCE 5.8): item fields as documented; the
# wrapper keys of the members list and the change log are not documented (configurable).


def center_info(record: Center) -> Json:
    """An item of ``GET /v1/centers``'s ``centers`` (a few CenterInfo fields)."""
    return {"id": record.id, "code": record.code, "name": record.name,
            "display_name": record.name, "description": None,
            "currency": {"id": record.currency_id}}


def member(org: Organisation, record: Membership, status: int | str,
           recurrence: int | str) -> Json:
    """A row of ``GET /v1/centers/{id}/members``: ``id`` is the user membership."""
    guest = org.guests[record.guest_id]
    freeze = record.freeze
    return {
        "id": record.id,
        "status": status,
        "guest": {"id": guest.id, "code": guest.code,
                  "name": f"{guest.first_name} {guest.last_name}"},
        "membership": {"id": record.plan.id, "code": record.plan.code, "name": record.plan.name,
                       "type": record.plan.type, "version_id": _derived(record.plan.id)},
        "start_date": when(record.sold_date),
        "end_date": when(record.expiry_date),
        "sold_date": when(record.sold_date),
        "recurrence_status": recurrence,
        "renewal_details": {"id": _derived(record.id), "auto_renewal": True},
        "freeze_date": when(freeze.start_date) if freeze else None,
        "cancelled_date": None,
        "closed_date": None,
        "credits_amount": 0.0,
        "services_amount": float(record.guestpass_total),
        "products_amount": 0.0,
    }


def membership_change(record: Membership, status: int | str, recurrence: int | str) -> Json:
    """An item of ``GET /v1/guests/memberships/change_log``: the membership as it is now."""
    return {"guest_id": record.guest_id, "id": record.id, "status": status,
            "recurrence_status": recurrence, "membership_code": record.plan.code,
            "membership_id": record.plan.id}


def page(key: str, items: list[Json], info: Json, info_key: str = "page_info") -> Json:
    """A page of a list: ``{key: items, info_key: info, "error": None}``."""
    return {key: items, info_key: info, "error": None}


_ITEM_TYPES = {0: "Service", 3: "Membership", 4: "Package"}  # the sandbox's item types


def sales_rows(org: Organisation, record: Invoice) -> list[Json]:
    """The sales accrual report's rows of one invoice, one per line item."""
    guest, center = org.guests[record.guest_id], org.centers[record.center_id]
    share = 1 / len(record.items)
    return [{
        "sale_date": when(record.invoice_date), "invoice_id": record.id,
        "invoice_no": record.number, "receipt_no": record.receipt_number,
        "guest_id": guest.id, "guest_name": f"{guest.first_name} {guest.last_name}",
        "guest_code": guest.code, "center_id": center.id, "center_name": center.name,
        "center_code": center.code, "item_id": item.id, "item_name": item.name,
        "item_code": None, "item_type": _ITEM_TYPES.get(item.type, str(item.type)), "qty": 1,
        "sales_exc_tax": round(record.net_price * share, 2),
        "sales_inc_tax": round(record.sum_total * share, 2), "tax": round(record.tax * share, 2),
        "collected": round(record.sum_total * share, 2), "redeemed": 0.0, "due": 0.0,
        "invoice_date": when(record.invoice_date), "sale_type": "Sale", "status": "Closed",
    } for item in record.items]


def _derived(record_id: str) -> str:
    """A stable id derived from another (for ids the sandbox's records do not hold)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, record_id))
