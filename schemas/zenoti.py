"""The Zenoti API resources we read (REFERENCE 5), as the API serves them.

Only the fields zenoti-events uses are typed; every model keeps the rest (``extra="allow"``),
so an enriched event can carry a resource as Zenoti has it, and a new Zenoti field never
breaks validation. Fields Zenoti may leave null are optional. Dates inside resources are
naive center-local times (REFERENCE 7.6) and stay naive.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeAlias

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

__all__ = [
    "ApiError",
    "CenterList",
    "CenterMember",
    "CenterMemberList",
    "CenterRef",
    "Freeze",
    "Guest",
    "GuestList",
    "GuestMembership",
    "GuestPackage",
    "Invoice",
    "InvoiceGuest",
    "InvoiceRef",
    "InvoiceResponse",
    "MemberGuest",
    "MemberMembership",
    "MembershipChange",
    "MembershipChangeLog",
    "MembershipList",
    "MembershipRef",
    "Number",
    "PackageDates",
    "PackageList",
    "PackageRef",
    "PageInfo",
    "PersonalInfo",
    "Phone",
    "SalesAccrualReport",
    "SalesRow",
    "ZenotiId",
    "membership_ref",
]

# A GUID in practice; an empty id would turn ``/v1/invoices/{id}`` into another endpoint.
ZenotiId: TypeAlias = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Zenoti types amounts and counts as "number": keep 55 an int and 20.5 a float, as sent.
Number: TypeAlias = int | float


class _Resource(BaseModel):
    model_config = ConfigDict(extra="allow")


class ApiError(_Resource):
    """The ``error`` object of an answer. Its shape varies by endpoint (REFERENCE 4.5):
    ``{code, message}``, ``code`` with ``error_message``, or ``{StatusCode, Message}``."""

    code: int | None = Field(None, validation_alias=AliasChoices("code", "StatusCode"))
    message: str | None = Field(
        None, validation_alias=AliasChoices("message", "Message", "error_message")
    )

    @classmethod
    def of(cls, error: object) -> ApiError:
        """Whatever Zenoti put under ``error``; text of any other shape becomes the message."""
        try:
            return cls.model_validate(error)
        except ValidationError:
            return cls.model_validate({"message": str(error)[:500]})

    def __str__(self) -> str:
        return f"error {self.code}: {self.message}"[:200]


class CenterRef(_Resource):
    id: ZenotiId
    name: str | None = None


class InvoiceRef(_Resource):
    """A reference to an invoice; Zenoti nulls ``id`` when there is none (``sale_invoice``)."""

    id: str | None = None
    no: str | None = None
    status: int | None = None
    receipt_no: str | None = None


class Phone(_Resource):
    country_code: int | None = None
    number: str | None = None


class PersonalInfo(_Resource):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    mobile_phone: Phone | None = None

    @field_validator("mobile_phone", mode="before")
    @classmethod
    def _phone_may_be_a_string(cls, value: object) -> object:
        # Invoice payloads carry the phone as "+91 98851..." where guests carry an object.
        return {"number": value} if isinstance(value, str) else value


class Guest(_Resource):
    """``GET /v1/guests/{id}``: the guest, unwrapped at the top level of the body."""

    id: ZenotiId
    code: str | None = None
    center_id: str | None = None
    center_name: str | None = None
    personal_info: PersonalInfo = Field(default_factory=PersonalInfo)


class InvoiceGuest(_Resource):
    id: ZenotiId
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None


class Invoice(_Resource):
    """``GET /v1/invoices/{id}``'s ``invoice``: the route from an event to its guest."""

    id: ZenotiId
    invoice_number: str | None = None
    receipt_number: str | None = None
    center_id: str | None = None
    guest: InvoiceGuest | None = None


class InvoiceResponse(_Resource):
    invoice: Invoice


class Freeze(_Resource):
    """A membership freeze; ``type`` 2 freezes benefits and shifts payments, 3 keeps
    benefits and skips payments (REFERENCE 3.1)."""

    start_date: datetime | None = None
    end_date: datetime | None = None
    type: int | None = None
    fee: Number | None = None
    fee_type: int | None = None
    comments: str | None = None
    froze_by: str | None = None


class MembershipRef(_Resource):
    """The membership plan a guest holds, with its guest pass allowance."""

    id: ZenotiId
    name: str | None = None
    code: str | None = None
    type: int | None = None
    guestpass_total: Number | None = None
    guestpass_balance: Number | None = None


class GuestMembership(_Resource):
    """One item of ``guest_memberships``; statuses use the enum of REFERENCE 5.2."""

    user_membership_id: ZenotiId
    group_user_membership_id: str | None = None
    status: int | None = None
    recurrence_status: int | None = None
    expiry_date: datetime | None = None
    member_code: str | None = None
    next_collection_date: datetime | None = None
    center: CenterRef | None = None
    membership: MembershipRef | None = None
    invoice: InvoiceRef | None = None
    freeze: Freeze | None = None


class MembershipList(_Resource):
    """``GET /v1/guests/{id}/memberships``; a null list means none."""

    guest_memberships: list[GuestMembership] | None = None


class PackageRef(_Resource):
    id: ZenotiId
    name: str | None = None
    code: str | None = None
    type: int | None = None


class PackageDates(_Resource):
    start: datetime | None = None
    end: datetime | None = None
    end_date_with_grace: datetime | None = None


class GuestPackage(_Resource):
    """One item of ``packages``; ``status`` and ``user_package_state`` use REFERENCE 3.7."""

    user_package_id: ZenotiId
    status: int | None = None
    user_package_state: int | None = None
    invoice: InvoiceRef | None = None
    package: PackageRef | None = None
    date: PackageDates | None = None
    center: CenterRef | None = None


class PackageList(_Resource):
    """``GET /v1/guests/{id}/packages``; a null list means none."""

    packages: list[GuestPackage] | None = None


class PageInfo(_Resource):
    """Paging of a list (Zenoti's pagination guide): ``total`` rows, this ``page``, ``size``.
    The guests list spells its key ``page_Info``; other lists ``page_info``."""

    total: int | None = None
    page: int | None = None
    size: int | None = None


class MemberGuest(_Resource):
    id: ZenotiId
    code: str | None = None
    name: str | None = None


class MemberMembership(_Resource):
    id: ZenotiId
    code: str | None = None
    name: str | None = None
    type: int | str | None = None  # a string in this table, an int elsewhere
    version_id: str | None = None


def membership_ref(plan: MemberMembership) -> MembershipRef:
    """The membership a center's member row names, as the guest lists name one (a type the
    row gives as a name is left out: the lists type it as a number)."""
    kind = plan.type if isinstance(plan.type, int) else None
    return MembershipRef(id=plan.id, name=plan.name, code=plan.code, type=kind)


class CenterMember(_Resource):
    """A row of ``GET /v1/centers/{center_id}/members`` (its documented field table): ``id``
    is the user membership id the webhooks call ``user_membership_id``."""

    id: ZenotiId
    status: int | str | None = None
    guest: MemberGuest | None = None
    membership: MemberMembership | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    sold_date: datetime | None = None
    freeze_date: datetime | None = None
    cancelled_date: datetime | None = None
    closed_date: datetime | None = None
    recurrence_status: int | str | None = None


class CenterMemberList(_Resource):
    """The members of a center, a page at a time. The list's wrapper key is not documented:
    ``members`` is assumed (``center_members`` and ``guest_memberships`` are accepted too)."""

    members: list[CenterMember] | None = Field(
        None, validation_alias=AliasChoices("members", "center_members", "guest_memberships"))
    page_info: PageInfo | None = Field(
        None, validation_alias=AliasChoices("page_info", "page_Info"))


class GuestList(_Resource):
    """``GET /v1/guests?center_id=&last_updated=&page=&size=``: guests of a center, wrapper
    ``guests`` and paging ``page_Info`` (documented); each guest as ``GET /v1/guests/{id}``
    returns it (assumed: the item fields are not documented)."""

    guests: list[Guest] | None = None
    page_info: PageInfo | None = Field(
        None, validation_alias=AliasChoices("page_Info", "page_info"))


class CenterList(_Resource):
    """``GET /v1/centers``: the organisation's centers (REFERENCE 5.5), wrapper ``centers``."""

    centers: list[CenterRef] | None = None


class MembershipChange(_Resource):
    """An item of ``GET /v1/guests/memberships/change_log`` (its documented fields): a user
    membership changed in the window, as it is now. Statuses are typed strings in the table
    and described by the numbers of REFERENCE 5.2."""

    id: ZenotiId
    guest_id: str | None = None
    status: int | str | None = None
    recurrence_status: int | str | None = None
    membership_code: str | None = None
    membership_id: str | None = None


class MembershipChangeLog(_Resource):
    """Membership changes in a window, a page at a time. The wrapper key is not documented:
    ``guest_memberships`` is assumed, ``change_logs`` and ``memberships`` accepted too."""

    changes: list[MembershipChange] | None = Field(
        None, validation_alias=AliasChoices("guest_memberships", "change_logs", "memberships"))
    page_info: PageInfo | None = Field(
        None, validation_alias=AliasChoices("page_info", "page_Info"))


class SalesRow(_Resource):
    """A row of the sales accrual report (``ReportInvoice``, documented): one invoice line,
    with the invoice's guest and center."""

    invoice_id: str | None = None
    invoice_no: str | None = None
    guest_id: str | None = None
    guest_code: str | None = None
    guest_name: str | None = None
    center_id: str | None = None
    item_id: str | None = None
    item_type: str | None = None
    sale_date: datetime | None = None
    invoice_date: datetime | None = None


class SalesAccrualReport(_Resource):
    """``POST /v1/reports/sales/accrual_basis/flat_file``: ``sales`` rows and ``page_info``
    (documented); ``total`` is kept as sent."""

    sales: list[SalesRow] | None = None
    page_info: PageInfo | None = None
