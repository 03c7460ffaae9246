"""The look-ups the built-in handlers share, each asking only ``ctx.zenoti``.

=====================  ==================================================  ====================
look-up                answers                                             calls, at most
=====================  ==================================================  ====================
``located_member``     a user membership's row in a center's members       1: the guest, when
                       snapshot, and its guest; ``None``: use point        no guests snapshot
                       look-ups                                            has them
``invoice_guest``      the guest an invoice names (how a webhook that      1 (kept 30 days)
                       names no guest reaches one)
``membership_at``      a guest's user membership among their memberships   1
                       at one center
``package_at``         a guest's package among their series packages at    1
                       one center
=====================  ==================================================  ====================

The calls are the event's own (an answer from the cache costs none); loading a snapshot
costs calls too, but of the tenant's client, shared by every event of that center. Ids are
GUIDs that Zenoti writes in either case, so every match is case-blind (``by_id``). A resource
that is not there is ``ResourceNotFound`` (the message is parked, not retried); the lists
answer ``None`` instead, since a handler may look at another center next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from processor import Context, ResourceNotFound
from schemas.zenoti import CenterMember, Guest, GuestMembership, GuestPackage, InvoiceGuest

__all__ = [
    "Located",
    "by_id",
    "invoice_guest",
    "located_member",
    "membership_at",
    "membership_not_listed",
    "package_at",
]

ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class Located:
    """A user membership as a center's members snapshot lists it, and its guest."""

    member: CenterMember
    center: str  # the center whose snapshot lists the membership
    guest: Guest


async def located_member(
    ctx: Context, user_membership_id: str, center_id: str | None, guest_id: str | None = None
) -> Located | None:
    """The membership's row from a members snapshot (``center_id``'s, or any loaded one's
    when ``None``) and its guest: ``guest_id``, else the row's owner, read from a guests
    snapshot at ``center_id`` (else the row's center) or, failing that, with one call.
    ``None`` when no snapshot serves the row, or when the row names no owner and no
    ``guest_id`` is given: the caller then uses point look-ups."""
    found = await ctx.zenoti.member(user_membership_id, center_id)
    if found is None:
        return None
    member, center = found
    if guest_id is None and member.guest is not None:
        guest_id = member.guest.id
    if guest_id is None:
        return None
    guest = await ctx.zenoti.guest(guest_id, center_id or center)
    return Located(member, center, guest)


async def invoice_guest(ctx: Context, invoice_id: str, of: str) -> InvoiceGuest:
    """The guest invoice ``invoice_id`` names, ``of`` saying what it sold (``"package 'p1'"``)
    for the message of the ``ResourceNotFound`` raised when it names none (Zenoti's own
    ``ResourceNotFound`` when it has no such invoice passes through)."""
    invoice = await ctx.zenoti.get_invoice(invoice_id)
    if invoice.guest is None:
        raise ResourceNotFound(f"invoice {invoice.id!r} of {of} names no guest")
    return invoice.guest


async def membership_at(
    ctx: Context, guest_id: str, center_id: str, user_membership_id: str
) -> GuestMembership | None:
    """User membership ``user_membership_id`` as the guest's memberships at ``center_id``
    list it now (fetched after the event was received); ``None`` if not listed there."""
    listed = await ctx.zenoti.list_memberships(guest_id, center_id)
    return by_id(listed, user_membership_id, lambda item: item.user_membership_id)


async def package_at(
    ctx: Context, guest_id: str, center_id: str, user_package_id: str
) -> GuestPackage | None:
    """Package ``user_package_id`` as the guest's series packages at ``center_id`` list it
    now (fetched after the event was received); ``None`` if not listed there."""
    listed = await ctx.zenoti.list_packages(guest_id, center_id)
    return by_id(listed, user_package_id, lambda item: item.user_package_id)


def membership_not_listed(user_membership_id: str, guest_id: str, where: str) -> ResourceNotFound:
    """The error for a membership none of the guest's lists at ``where`` (``"center 'c1'"``,
    ``"centers ['c1', 'c2']"``) has."""
    return ResourceNotFound(
        f"membership {user_membership_id!r} is not among the memberships of guest "
        f"{guest_id!r} at {where}"
    )


def by_id(items: Iterable[ItemT], wanted: str, id_of: Callable[[ItemT], str]) -> ItemT | None:
    """The first of ``items`` whose id (``id_of(item)``) is ``wanted``, compared case-blind;
    ``None`` if there is none."""
    wanted = wanted.lower()
    return next((item for item in items if id_of(item).lower() == wanted), None)
