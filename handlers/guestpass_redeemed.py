"""``Guestpass.redeemed`` -> ``guest.guestpass.redeemed``.

The webhook names the guest and the membership whose pass was used (REFERENCE 3.6) but no
center, and listing memberships needs one with an API key (REFERENCE 5.2): the guest's home
center is used, so the guest is read first and the list second.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from processor.errors import PermanentError, ResourceNotFound
from processor.handler import Context, Event
from schemas import enriched
from schemas.webhooks import GuestpassRedeemedData
from schemas.zenoti import GuestMembership


class GuestpassRedeemed:
    """Publishes the redemption's counts with the guest and the membership's pass allowance."""

    name: ClassVar[str] = "guestpass-redeemed"
    event_types: ClassVar[tuple[str, ...]] = ("Guestpass.redeemed",)
    schema: ClassVar[type[BaseModel]] = GuestpassRedeemedData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Two calls, in turn: the guest, then their memberships at their home center."""
        data: GuestpassRedeemedData = event.data
        guest = await ctx.zenoti.get_guest(data.guest_id)
        if not guest.center_id:
            raise PermanentError(f"guest {guest.id!r} has no home center to list memberships at")
        memberships = await ctx.zenoti.list_memberships(data.guest_id, guest.center_id)
        membership = _matching(memberships, data, guest.center_id)
        output = enriched.GuestpassRedeemed(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=enriched.EnrichedGuest.from_guest(guest), membership=membership,
            guestpass=_facts(data),
        )
        await ctx.publish(enriched.GuestpassRedeemed.event_name, output)
        ctx.log.info("event.enriched", calls=2, guest_id=data.guest_id,
                     user_membership_id=membership.user_membership_id, balance=data.balance)


def _facts(data: GuestpassRedeemedData) -> enriched.GuestpassFacts:
    return enriched.GuestpassFacts(
        redemption_id=data.id, guestpass_id=data.guestpass_id, redeemed_at=data.date,
        session_id=data.session_id, invoice_id=data.invoice_id, total=data.total,
        balance=data.balance, used=data.used, transferred=data.transferred, expired=data.expired,
    )


def _matching(
    memberships: list[GuestMembership], data: GuestpassRedeemedData, center_id: str
) -> GuestMembership:
    """The membership whose pass was redeemed; GUIDs compared case-blind."""
    wanted = data.user_membership_id.lower()
    for membership in memberships:
        if membership.user_membership_id.lower() == wanted:
            return membership
    raise ResourceNotFound(
        f"membership {data.user_membership_id!r} is not among the memberships of guest "
        f"{data.guest_id!r} at their home center {center_id!r}"
    )
