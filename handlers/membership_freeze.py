"""``Guest.Membership.Freeze`` -> ``guest.membership.frozen``.

The freeze webhook names the membership and its center but not the guest (REFERENCE 3.1).
The center's members list (a snapshot, ``processor.zenoti.snapshots``) says whose membership it is
and what it is; the webhook itself says its state (status, freeze, dates), so nothing needs
asking per event. Where no snapshot answers (a quiet center, a membership it lacks), the
guest is found through the membership's sale invoice, whose id is
``group_user_membership_id`` (REFERENCE 3.5), and the membership read from the guest's list
at the webhook's center: three calls.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, ResourceNotFound
from schemas.enriched import EnrichedGuest, MembershipFrozen
from schemas.webhooks import MembershipFreezeData
from schemas.zenoti import CenterMember, Guest, GuestMembership, Invoice, membership_ref


class MembershipFreeze:
    """Publishes the frozen membership with its guest and the webhook's freeze terms."""

    name: ClassVar[str] = "membership-freeze"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Membership.Freeze",)
    schema: ClassVar[type[BaseModel]] = MembershipFreezeData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """The center's snapshot first; else the sale invoice, then the guest and their
        memberships together."""
        data: MembershipFreezeData = event.data
        located = await ctx.zenoti.member(data.user_membership_id, data.center.id)
        owner = located[0].guest if located is not None else None
        if located is not None and owner is not None:
            guest = await ctx.zenoti.guest(owner.id, data.center.id)
            membership = _from_member(located[0], data)
        else:
            guest, membership = await _point_look_ups(data, ctx)
        output = MembershipFrozen(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=EnrichedGuest.from_guest(guest), membership=membership, freeze=data.freeze,
            recurrence_status=data.recurrence_status,
        )
        await ctx.publish(MembershipFrozen.event_name, output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls, guest_id=guest.id,
                     user_membership_id=membership.user_membership_id)


async def _point_look_ups(
    data: MembershipFreezeData, ctx: Context
) -> tuple[Guest, GuestMembership]:
    guest_id = _guest_id(await ctx.zenoti.get_invoice(data.group_user_membership_id), data)
    guest, memberships = await asyncio.gather(
        ctx.zenoti.get_guest(guest_id), ctx.zenoti.list_memberships(guest_id, data.center.id)
    )
    return guest, _matching(memberships, data, guest_id)


def _from_member(member: CenterMember, data: MembershipFreezeData) -> GuestMembership:
    """The membership as the center's list names it, in the state the webhook reports."""
    plan = member.membership
    return GuestMembership(
        user_membership_id=data.user_membership_id,
        group_user_membership_id=data.group_user_membership_id, status=data.status,
        recurrence_status=data.recurrence_status, expiry_date=data.expiry_date,
        member_code=data.member_code, next_collection_date=data.next_collection_date,
        center=data.center, freeze=data.freeze,
        membership=None if plan is None else membership_ref(plan),
    )


def _guest_id(invoice: Invoice, data: MembershipFreezeData) -> str:
    if invoice.guest is None:
        raise ResourceNotFound(
            f"invoice {invoice.id!r} of membership {data.user_membership_id!r} names no guest"
        )
    return invoice.guest.id


def _matching(
    memberships: list[GuestMembership], data: MembershipFreezeData, guest_id: str
) -> GuestMembership:
    """The guest's membership the webhook is about; ids compared case-blind (they are GUIDs,
    and Zenoti writes some of them upper-case)."""
    wanted = data.user_membership_id.lower()
    for membership in memberships:
        if membership.user_membership_id.lower() == wanted:
            return membership
    raise ResourceNotFound(
        f"membership {data.user_membership_id!r} is not among the memberships of guest "
        f"{guest_id!r} at center {data.center.id!r}"
    )
