"""``Guest.Membership.Freeze`` -> ``guest.membership.frozen``.

The freeze webhook names the membership and its center but not the guest (REFERENCE 3.1).
The center's members list (a snapshot, kept by the Zenoti client) says whose membership it is
and what it is; the webhook itself says its state (status, freeze, dates), so nothing needs
asking per event. Where no snapshot answers (a quiet center, a membership it lacks), the
guest is found through the membership's sale invoice, whose id is
``group_user_membership_id`` (REFERENCE 3.5), and the membership read from the guest's list
at the webhook's center: three calls.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import BaseModel

from handlers import _lookup
from processor import Context, Event
from schemas.enriched import EnrichedGuest, MembershipFrozen
from schemas.webhooks import MembershipFreezeData
from schemas.zenoti import CenterMember, Guest, GuestMembership, membership_ref


class MembershipFreeze:
    """Publishes the frozen membership with its guest and the webhook's freeze terms."""

    name: ClassVar[str] = "membership-freeze"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Membership.Freeze",)
    schema: ClassVar[type[BaseModel]] = MembershipFreezeData
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (MembershipFrozen,)

    async def handle(self, event: Event[MembershipFreezeData], ctx: Context) -> None:
        """The center's snapshot first; else the sale invoice, then the guest and their
        memberships together. Logs ``calls``: the API calls this event made."""
        data, before = event.data, ctx.zenoti.calls
        located = await _lookup.located_member(ctx, data.user_membership_id, data.center.id)
        if located is not None:
            guest, membership = located.guest, _from_member(located.member, data)
        else:
            guest, membership = await _point_look_ups(ctx, data)
        output = MembershipFrozen.about(
            event, handler=self.name, guest=EnrichedGuest.from_guest(guest),
            membership=membership, freeze=data.freeze, recurrence_status=data.recurrence_status,
        )
        await ctx.publish(output.routing_key(), output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls - before, guest_id=guest.id,
                     user_membership_id=membership.user_membership_id)


async def _point_look_ups(
    ctx: Context, data: MembershipFreezeData
) -> tuple[Guest, GuestMembership]:
    """The sale invoice's guest, then their details and memberships at the webhook's center
    at once; ``ResourceNotFound`` if the membership is not among them."""
    what = f"membership {data.user_membership_id!r}"
    buyer = await _lookup.invoice_guest(ctx, data.group_user_membership_id, what)
    guest, membership = await asyncio.gather(
        ctx.zenoti.get_guest(buyer.id),
        _lookup.membership_at(ctx, buyer.id, data.center.id, data.user_membership_id),
    )
    if membership is None:
        raise _lookup.membership_not_listed(data.user_membership_id, buyer.id,
                                            f"center {data.center.id!r}")
    return guest, membership


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
