"""``Guest.Membership.Freeze`` -> ``guest.membership.frozen``.

The freeze webhook names the membership but not the guest (REFERENCE 3.1), so the guest is
found through the membership's sale invoice, whose id is ``group_user_membership_id``
(REFERENCE 3.5), then the membership is read from the guest's list at the webhook's center.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, ResourceNotFound
from schemas.enriched import EnrichedGuest, MembershipFrozen
from schemas.webhooks import MembershipFreezeData
from schemas.zenoti import GuestMembership, Invoice


class MembershipFreeze:
    """Publishes the frozen membership with its guest and the webhook's freeze terms."""

    name: ClassVar[str] = "membership-freeze"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Membership.Freeze",)
    schema: ClassVar[type[BaseModel]] = MembershipFreezeData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Three calls: the sale invoice, then the guest and their memberships together."""
        data: MembershipFreezeData = event.data
        guest_id = _guest_id(await ctx.zenoti.get_invoice(data.group_user_membership_id), data)
        guest, memberships = await asyncio.gather(
            ctx.zenoti.get_guest(guest_id), ctx.zenoti.list_memberships(guest_id, data.center.id)
        )
        membership = _matching(memberships, data, guest_id)
        output = MembershipFrozen(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=EnrichedGuest.from_guest(guest), membership=membership, freeze=data.freeze,
            recurrence_status=data.recurrence_status,
        )
        await ctx.publish(MembershipFrozen.event_name, output)
        ctx.log.info("event.enriched", calls=3, guest_id=guest_id,
                     user_membership_id=membership.user_membership_id)


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
