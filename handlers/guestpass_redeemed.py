"""``Guestpass.redeemed`` -> ``guest.guestpass.redeemed``.

The webhook names the guest and the membership whose pass was used (REFERENCE 3.6) but no
center, and listing memberships needs one with an API key (REFERENCE 5.2). The guest's home
center is tried first, as most memberships are sold there; a membership sold at another
center is then looked for at the center of the redemption's invoice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, ResourceNotFound
from schemas import enriched
from schemas.webhooks import GuestpassRedeemedData
from schemas.zenoti import Guest, GuestMembership


class GuestpassRedeemed:
    """Publishes the redemption's counts with the guest and the membership's pass allowance."""

    name: ClassVar[str] = "guestpass-redeemed"
    event_types: ClassVar[tuple[str, ...]] = ("Guestpass.redeemed",)
    schema: ClassVar[type[BaseModel]] = GuestpassRedeemedData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Two calls in turn (the guest, then their memberships at their home center); two
        more for a membership sold elsewhere (the redemption's invoice, then that center)."""
        data: GuestpassRedeemedData = event.data
        guest = await ctx.zenoti.get_guest(data.guest_id)
        membership, calls = await _find_membership(ctx, data, guest)
        output = enriched.GuestpassRedeemed(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=enriched.EnrichedGuest.from_guest(guest), membership=membership,
            guestpass=_facts(data),
        )
        await ctx.publish(enriched.GuestpassRedeemed.event_name, output)
        ctx.log.info("event.enriched", calls=1 + calls, guest_id=data.guest_id,
                     user_membership_id=membership.user_membership_id, balance=data.balance)


async def _find_membership(
    ctx: Context, data: GuestpassRedeemedData, guest: Guest
) -> tuple[GuestMembership, int]:
    """The redeemed membership and the calls spent finding it: at the home center, else at
    the center of the redemption's invoice when that is another one."""
    searched: list[str] = []
    calls = 0
    if guest.center_id:
        searched.append(guest.center_id)
        calls += 1
        found = _matching(await ctx.zenoti.list_memberships(data.guest_id, guest.center_id), data)
        if found is not None:
            return found, calls
    if data.invoice_id:
        invoice = await ctx.zenoti.get_invoice(data.invoice_id)
        calls += 1
        if invoice.center_id and invoice.center_id not in searched:
            searched.append(invoice.center_id)
            calls += 1
            listed = await ctx.zenoti.list_memberships(data.guest_id, invoice.center_id)
            found = _matching(listed, data)
            if found is not None:
                return found, calls
    raise ResourceNotFound(
        f"membership {data.user_membership_id!r} is not among the memberships of guest "
        f"{data.guest_id!r} at centers {searched}"
    )


def _matching(
    memberships: list[GuestMembership], data: GuestpassRedeemedData
) -> GuestMembership | None:
    """The membership whose pass was redeemed; GUIDs compared case-blind."""
    wanted = data.user_membership_id.lower()
    return next((m for m in memberships if m.user_membership_id.lower() == wanted), None)


def _facts(data: GuestpassRedeemedData) -> enriched.GuestpassFacts:
    return enriched.GuestpassFacts(
        redemption_id=data.id, guestpass_id=data.guestpass_id, redeemed_at=data.date,
        session_id=data.session_id, invoice_id=data.invoice_id, total=data.total,
        balance=data.balance, used=data.used, transferred=data.transferred, expired=data.expired,
    )
