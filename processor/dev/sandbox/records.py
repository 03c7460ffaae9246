"""The records of a synthetic Zenoti organisation, as plain frozen dataclasses.

They hold facts, not JSON: ``processor.dev.sandbox.payloads`` renders them the way the Zenoti
API does and ``processor.dev.deliveries`` the way its webhooks do. Ids are lower-case UUID
strings; datetimes are naive (Zenoti sends center-local times without a zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CURRENCY_ID = 148  # what Zenoti samples carry; the sandbox has one currency


@dataclass(frozen=True, slots=True)
class Center:
    id: str
    name: str
    code: str
    time_zone_id: int
    currency_id: int = CURRENCY_ID


@dataclass(frozen=True, slots=True)
class Guest:
    id: str
    code: str
    center_id: str  # the home center
    first_name: str
    last_name: str
    email: str
    phone: str  # ten digits, country code 1
    gender: int
    date_of_birth: datetime
    created_date: datetime


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    id: str
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Invoice:
    """A closed sale: every membership, package and guest-pass booking has one."""

    id: str
    number: str
    receipt_number: str
    center_id: str
    guest_id: str
    invoice_date: datetime
    net_price: float
    tax: float
    items: tuple[InvoiceItem, ...]

    @property
    def sum_total(self) -> float:
        return round(self.net_price + self.tax, 2)


@dataclass(frozen=True, slots=True)
class Plan:
    """A catalogue entry that guests buy: a membership or a series package."""

    id: str
    name: str
    code: str
    type: int
    price: float


@dataclass(frozen=True, slots=True)
class Freeze:
    start_date: datetime
    end_date: datetime
    type: int  # 2 = freeze benefits and shift payments (REFERENCE 3.1)
    fee: float


@dataclass(frozen=True, slots=True)
class GuestpassRedemption:
    """One guest pass used at a class booking; ``id`` is upper-case, as in Zenoti's sample."""

    id: str
    date: datetime
    invoice_id: str  # the class booking's invoice
    session_id: int
    used_after: int  # passes used once this redemption counted


@dataclass(frozen=True, slots=True)
class Membership:
    """A membership a guest bought; ``invoice_id`` is its ``group_user_membership_id``."""

    id: str
    invoice_id: str
    guest_id: str
    center_id: str
    plan: Plan
    member_code: str
    expiry_date: datetime
    next_collection_date: datetime
    guestpass_id: str
    guestpass_total: int
    redemptions: tuple[GuestpassRedemption, ...]
    freeze: Freeze | None
    frozen_at: datetime | None = None  # when the freeze was made (the sandbox's today)

    @property
    def sold_date(self) -> datetime:
        return self.expiry_date - timedelta(days=365)

    @property
    def guestpass_balance(self) -> int:
        return self.guestpass_total - len(self.redemptions)

    @property
    def status(self) -> int:
        return 1  # Active, even when frozen: the freeze shows in recurrence_status

    @property
    def recurrence_status(self) -> int:
        return 3 if self.freeze else 1  # Frozen / Active (REFERENCE 5.2)


@dataclass(frozen=True, slots=True)
class PackageService:
    id: str
    name: str
    total: int
    used: int

    @property
    def balance(self) -> int:
        return self.total - self.used


@dataclass(frozen=True, slots=True)
class Package:
    """A series package a guest bought; ``invoice_id`` is its sale invoice."""

    id: str
    invoice_id: str
    guest_id: str
    center_id: str
    plan: Plan
    status: int  # Active=1, Frozen=3, Expired=5 (REFERENCE 3.7)
    start: datetime
    end: datetime
    grace_days: int
    services: tuple[PackageService, ...]
