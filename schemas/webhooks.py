"""The ``data`` of the webhook events the built-in handlers enrich (REFERENCE 3.1, 3.6, 3.7).

Required are only the ids a handler needs to reach the guest; everything else may be null
or missing, and unknown fields are kept. A failure here is an ``InvalidPayload``: the worker
dead-letters the message rather than retrying what cannot change.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, model_validator

from schemas.zenoti import (
    CenterRef,
    Freeze,
    InvoiceRef,
    MembershipRef,
    Number,
    PackageRef,
    ZenotiId,
)

__all__ = ["GuestpassRedeemedData", "MembershipFreezeData", "PackageStatusData"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="allow")


class MembershipFreezeData(_Data):
    """``Guest.Membership.Freeze``. It names no guest: the guest is reached through the
    membership's sale invoice, whose id ``group_user_membership_id`` equals (REFERENCE 3.5)."""

    user_membership_id: ZenotiId
    group_user_membership_id: ZenotiId
    center: CenterRef
    status: int | None = None
    recurrence_status: int | None = None
    expiry_date: datetime | None = None
    member_code: str | None = None
    next_collection_date: datetime | None = None
    freeze: Freeze | None = None


class GuestpassRedeemedData(_Data):
    """``Guestpass.redeemed``: a guest pass of a membership was used at a class booking."""

    guest_id: ZenotiId
    user_membership_id: ZenotiId
    id: str | None = None
    date: datetime | None = None
    guestpass_id: str | None = None
    session_id: int | None = None
    invoice_id: str | None = None
    membership: MembershipRef | None = None
    is_category: bool | None = None
    total: Number | None = None
    balance: Number | None = None
    used: Number | None = None
    transferred: Number | None = None
    expired: Number | None = None
    frequency: str | None = None


class PackageStatusData(_Data):
    """``Guest.Package.StatusUpdate``. It names no guest: the guest is reached through the
    package's invoice, ``invoice.id`` or, when Zenoti nulls that, ``sale_invoice.id``."""

    user_package_id: ZenotiId
    center: CenterRef
    status: int | None = None
    user_package_state: int | None = None
    invoice: InvoiceRef | None = None
    sale_invoice: InvoiceRef | None = None
    package: PackageRef | None = None
    is_refunded: bool | None = None

    @model_validator(mode="after")
    def _names_an_invoice(self) -> PackageStatusData:
        if not self.invoice_id:
            raise ValueError("neither invoice.id nor sale_invoice.id is set")
        return self

    @property
    def invoice_id(self) -> str:
        """The invoice that leads to the guest: ``invoice.id``, else ``sale_invoice.id``."""
        for ref in (self.invoice, self.sale_invoice):
            if ref is not None and ref.id and ref.id.strip():
                return ref.id.strip()
        return ""
