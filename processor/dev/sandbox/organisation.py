"""A deterministic synthetic Zenoti organisation: centers, guests and what they bought.

``Organisation.generate(seed)`` yields the same records for the same seed and sizes, so the
sandbox (which serves them) and the simulator (which sends webhooks about them) agree
without talking to each other. The links follow REFERENCE 3.5 and 3.7: a membership's
``group_user_membership_id`` and a package's ``invoice.id`` are sale invoices whose guest is
the buyer, which is how the handlers find a guest that an event does not name.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from processor.dev.sandbox.records import (
    Center,
    Freeze,
    Guest,
    GuestpassRedemption,
    Invoice,
    InvoiceItem,
    Membership,
    Package,
    PackageService,
    Plan,
)

BASE_DATE = datetime(2026, 3, 2)  # "today" in the sandbox; every date is relative to it

_FIRST = ("Ava", "Noah", "Maya", "Liam", "Zoe", "Ethan", "Isla", "Omar", "Lena", "Ravi")
_LAST = ("Patel", "Garcia", "Nguyen", "Smith", "Okafor", "Rossi", "Kim", "Haddad", "Silva")
_AREAS = ("Downtown", "Riverside", "Uptown", "Lakeside", "Harbour", "Midtown")
_MEMBERSHIPS = (("Cycling Unlimited", 129.0), ("Yoga 8 Classes", 89.0), ("Spa Essentials", 59.0))
_PACKAGES = (("Massage Series x5", 400.0), ("Facial Series x3", 210.0), ("Laser Series x6", 900.0))
_SERVICES = ("Swedish Massage 60", "Deep Tissue 90", "Hydrafacial", "Laser Session", "Manicure")
_ITEM_SERVICE, _ITEM_MEMBERSHIP, _ITEM_PACKAGE = 0, 3, 4  # invoice item types (sandbox's own)
_TAX_RATE = 0.08


def _made_today(record_id: str) -> datetime:
    """A moment of today's opening hours (8:00-20:00) fixed by the record's id: every freeze
    is made today, so the day's freeze webhooks (``processor.dev.sandbox.day``) and the API's
    change log agree on when, without drawing from the generator's stream."""
    return BASE_DATE + timedelta(hours=8, seconds=int(record_id[:8], 16) % (12 * 3600))


def new_id(rng: random.Random) -> str:
    """A lower-case version-4 UUID string drawn from ``rng`` (deterministic per seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Organisation:
    """Every record of one organisation, indexed the ways the Zenoti API looks them up.

    Lookups take ids in any case (Zenoti's own GUIDs vary) and return ``None`` or an empty
    list for ids they do not know.
    """

    def __init__(
        self,
        *,
        centers: Iterable[Center],
        guests: Iterable[Guest],
        invoices: Iterable[Invoice],
        memberships: Iterable[Membership],
        packages: Iterable[Package],
    ) -> None:
        self.centers = {c.id: c for c in centers}
        self.guests = {g.id: g for g in guests}
        self.invoices = {i.id: i for i in invoices}
        self.memberships = tuple(memberships)
        self.packages = tuple(packages)
        self._memberships_by_guest: dict[str, list[Membership]] = defaultdict(list)
        self._packages_by_guest: dict[str, list[Package]] = defaultdict(list)
        for membership in self.memberships:
            self._memberships_by_guest[membership.guest_id].append(membership)
        for package in self.packages:
            self._packages_by_guest[package.guest_id].append(package)
        # Center-wide lists, in the order they are served: oldest first, then by id.
        self._members: dict[str, list[Membership]] = defaultdict(list)
        for membership in sorted(self.memberships, key=lambda m: (m.sold_date, m.id)):
            self._members[membership.center_id].append(membership)
        self._guests_at: dict[str, list[Guest]] = defaultdict(list)
        for guest in sorted(self.guests.values(), key=lambda g: (g.created_date, g.id)):
            self._guests_at[guest.center_id].append(guest)

    @classmethod
    def generate(cls, seed: int, *, guests: int = 300, centers: int = 3) -> Organisation:
        """The organisation of ``seed``: ``centers`` centers, ``guests`` guests, about one
        membership and one series package per two guests, and their invoices."""
        if guests < 1 or centers < 1:
            raise ValueError("an organisation needs at least one guest and one center")
        return _Generator(random.Random(seed)).organisation(guests, centers)

    def center(self, center_id: str) -> Center | None:
        return self.centers.get(center_id.lower())

    def guest(self, guest_id: str) -> Guest | None:
        return self.guests.get(guest_id.lower())

    def invoice(self, invoice_id: str) -> Invoice | None:
        return self.invoices.get(invoice_id.lower())

    def memberships_of(self, guest_id: str, center_id: str) -> list[Membership]:
        """The guest's memberships sold at ``center_id``."""
        owned = self._memberships_by_guest.get(guest_id.lower(), [])
        return [m for m in owned if m.center_id == center_id.lower()]

    def members_of(self, center_id: str) -> list[Membership]:
        """The memberships sold at ``center_id``, oldest sale first."""
        return self._members.get(center_id.lower(), [])

    def guests_at(self, center_id: str) -> list[Guest]:
        """The guests whose home center is ``center_id``, oldest first."""
        return self._guests_at.get(center_id.lower(), [])

    def packages_of(self, guest_id: str, center_id: str) -> list[Package]:
        """The guest's series packages sold at ``center_id``."""
        owned = self._packages_by_guest.get(guest_id.lower(), [])
        return [p for p in owned if p.center_id == center_id.lower()]


class _Generator:
    """Draws one organisation from ``rng``; the order of draws is part of the determinism."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.invoices: list[Invoice] = []

    def organisation(self, guest_count: int, center_count: int) -> Organisation:
        centers = [self.center(i) for i in range(center_count)]
        memberships = [self.plan(name, price, "MEM", 1) for name, price in _MEMBERSHIPS]
        packages = [self.plan(name, price, "PKG", 2) for name, price in _PACKAGES]
        services = [(new_id(self.rng), name) for name in _SERVICES]
        guests = [self.guest(i, self.rng.choice(centers)) for i in range(guest_count)]
        sold_memberships = [
            self.membership(self.rng.choice(guests), centers, self.rng.choice(memberships))
            for _ in range(max(1, guest_count // 2))
        ]
        sold_packages = [
            self.package(self.rng.choice(guests), centers, self.rng.choice(packages), services)
            for _ in range(max(1, guest_count // 2))
        ]
        return Organisation(centers=centers, guests=guests, invoices=self.invoices,
                            memberships=sold_memberships, packages=sold_packages)

    def center(self, index: int) -> Center:
        area = _AREAS[index % len(_AREAS)] + ("" if index < len(_AREAS) else f" {index}")
        return Center(id=new_id(self.rng), name=f"Sandbox Spa {area}", code=f"SB{index + 1:03d}",
                      time_zone_id=self.rng.choice((89, 90, 92)))

    def plan(self, name: str, price: float, prefix: str, plan_type: int) -> Plan:
        code = f"{prefix}{self.rng.randint(100, 999)}"
        return Plan(id=new_id(self.rng), name=name, code=code, type=plan_type, price=price)

    def guest(self, index: int, home: Center) -> Guest:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return Guest(
            id=new_id(rng), code=f"G{index + 1:05d}", center_id=home.id, first_name=first,
            last_name=last, email=f"{first}.{last}{index + 1}@example.com".lower(),
            phone=f"555{rng.randint(0, 9_999_999):07d}", gender=rng.choice((0, 1)),
            date_of_birth=datetime(1960, 1, 1) + timedelta(days=rng.randint(0, 40 * 365)),
            created_date=BASE_DATE - timedelta(days=rng.randint(30, 1500)),
        )

    def sale_center(self, guest: Guest, centers: Sequence[Center]) -> Center:
        """Mostly the guest's home center, sometimes another one (cross-center sales)."""
        if self.rng.random() < 0.85:
            return next(c for c in centers if c.id == guest.center_id)
        return self.rng.choice(centers)

    def invoice(self, guest: Guest, center: Center, when: datetime, item: str, item_type: int,
                net: float) -> Invoice:
        number = len(self.invoices) + 1001
        invoice = Invoice(
            id=new_id(self.rng), number=f"{center.code}-{number}", receipt_number=f"R{number}",
            center_id=center.id, guest_id=guest.id, invoice_date=when, net_price=net,
            tax=round(net * _TAX_RATE, 2),
            items=(InvoiceItem(id=new_id(self.rng), name=item, type=item_type),),
        )
        self.invoices.append(invoice)
        return invoice

    def membership(self, guest: Guest, centers: Sequence[Center], plan: Plan) -> Membership:
        rng, center = self.rng, self.sale_center(guest, centers)
        sold = BASE_DATE - timedelta(days=rng.randint(30, 300))
        invoice = self.invoice(guest, center, sold, plan.name, _ITEM_MEMBERSHIP, plan.price)
        total = rng.randint(0, 6)
        redemptions = tuple(self.redemption(guest, center, sold, used)
                            for used in range(1, rng.randint(0, total) + 1))
        ident, code = new_id(rng), f"M{rng.randint(100_000, 999_999)}"
        collection = BASE_DATE + timedelta(days=rng.randint(1, 28))
        guestpass_id = new_id(rng)
        freeze = self.freeze() if rng.random() < 0.3 else None
        return Membership(
            id=ident, invoice_id=invoice.id, guest_id=guest.id, center_id=center.id,
            plan=plan, member_code=code, expiry_date=sold + timedelta(days=365),
            next_collection_date=collection, guestpass_id=guestpass_id, guestpass_total=total,
            redemptions=redemptions, freeze=freeze,
            frozen_at=_made_today(ident) if freeze else None,
        )

    def redemption(self, guest: Guest, center: Center, sold: datetime,
                   used: int) -> GuestpassRedemption:
        when = sold + timedelta(days=7 * used, hours=self.rng.randint(7, 19))
        booking = self.invoice(guest, center, when, "Class booking (guest pass)",
                               _ITEM_SERVICE, 0.0)
        return GuestpassRedemption(id=new_id(self.rng).upper(), date=when, invoice_id=booking.id,
                                   session_id=self.rng.randint(10_000, 99_999), used_after=used)

    def freeze(self) -> Freeze:
        start = BASE_DATE + timedelta(days=self.rng.randint(-10, 10))
        end = start + timedelta(days=self.rng.choice((14, 30, 60)))
        fee = self.rng.choice((0.0, 10.0, 25.0))
        return Freeze(start_date=start, end_date=end, type=2, fee=fee)

    def package(self, guest: Guest, centers: Sequence[Center], plan: Plan,
                services: Sequence[tuple[str, str]]) -> Package:
        rng, center = self.rng, self.sale_center(guest, centers)
        start = BASE_DATE - timedelta(days=rng.randint(0, 200))
        invoice = self.invoice(guest, center, start, plan.name, _ITEM_PACKAGE, plan.price)
        included = []
        for service_id, name in rng.sample(list(services), k=rng.randint(1, 2)):
            total = rng.choice((3, 5, 6, 10))
            included.append(PackageService(service_id, name, total, rng.randint(0, total)))
        return Package(
            id=new_id(rng), invoice_id=invoice.id, guest_id=guest.id, center_id=center.id,
            plan=plan, status=rng.choices((1, 3, 5), weights=(8, 1, 1))[0], start=start,
            end=start + timedelta(days=365), grace_days=rng.choice((0, 15, 30)),
            services=tuple(included),
        )
