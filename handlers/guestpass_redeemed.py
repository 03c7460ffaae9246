"""``Guestpass.redeemed`` -> ``guest.guestpass.redeemed``.

The webhook names the guest and the membership whose pass was used (REFERENCE 3.6) but no
center. The centers' members lists (snapshots, kept by the Zenoti client) say which center sold
that membership and whose it is (the pass's guest may be the owner's guest, not the owner);
the webhook says the pass's counts. Where no snapshot answers, the membership is looked for
in the guest's list at their home center, then at the center of the redemption's invoice
(listing memberships needs a center with an API key, REFERENCE 5.2).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from handlers import _lookup
from processor import Context, Event
from schemas import enriched
from schemas.webhooks import GuestpassRedeemedData
from schemas.zenoti import (
    CenterMember,
    CenterRef,
    Guest,
    GuestMembership,
    MembershipRef,
    membership_ref,
)


class GuestpassRedeemed:
    """Publishes the redemption's counts with the guest and the membership's pass allowance."""

    name: ClassVar[str] = "guestpass-redeemed"
    event_types: ClassVar[tuple[str, ...]] = ("Guestpass.redeemed",)
    schema: ClassVar[type[BaseModel]] = GuestpassRedeemedData
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (enriched.GuestpassRedeemed,)

    async def handle(self, event: Event[GuestpassRedeemedData], ctx: Context) -> None:
        """The snapshots first; else two calls in turn (the guest, then their memberships at
        their home center), two more for a membership sold elsewhere (the redemption's
        invoice, then that center). Logs ``calls``: the API calls this event made."""
        data, before = event.data, ctx.zenoti.calls
        located = await _lookup.located_member(ctx, data.user_membership_id, None, data.guest_id)
        if located is not None:
            guest = located.guest
            membership = _from_member(located.member, located.center, data)
        else:
            guest = await ctx.zenoti.get_guest(data.guest_id)
            membership = await _find_membership(ctx, data, guest)
        output = enriched.GuestpassRedeemed.about(
            event, handler=self.name, guest=enriched.EnrichedGuest.from_guest(guest),
            membership=membership, guestpass=_facts(data),
        )
        await ctx.publish(output.routing_key(), output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls - before, guest_id=data.guest_id,
                     user_membership_id=membership.user_membership_id, balance=data.balance)


def _from_member(member: CenterMember, center: str,
                 data: GuestpassRedeemedData) -> GuestMembership:
    """The membership as its center's list names it, with the pass counts of the webhook."""
    plan, told = member.membership, data.membership
    ref = None
    if plan is not None:
        ref = membership_ref(plan)
        ref.name = ref.name or (told.name if told else None)
    elif told is not None:
        ref = MembershipRef(id=told.id, name=told.name)
    if ref is not None:
        ref.guestpass_total, ref.guestpass_balance = data.total, data.balance
    status = member.status if isinstance(member.status, int) else None
    return GuestMembership(user_membership_id=data.user_membership_id, status=status,
                           center=CenterRef(id=center), membership=ref)


async def _find_membership(
    ctx: Context, data: GuestpassRedeemedData, guest: Guest
) -> GuestMembership:
    """The redeemed membership: at the home center, else at the center of the redemption's
    invoice when that is another one; ``ResourceNotFound`` naming the centers searched."""
    searched: list[str] = []
    if guest.center_id:
        searched.append(guest.center_id)
        found = await _lookup.membership_at(ctx, data.guest_id, guest.center_id,
                                            data.user_membership_id)
        if found is not None:
            return found
    if data.invoice_id:
        invoice = await ctx.zenoti.get_invoice(data.invoice_id)
        if invoice.center_id and invoice.center_id not in searched:
            searched.append(invoice.center_id)
            found = await _lookup.membership_at(ctx, data.guest_id, invoice.center_id,
                                                data.user_membership_id)
            if found is not None:
                return found
    raise _lookup.membership_not_listed(data.user_membership_id, data.guest_id,
                                        f"centers {searched}")


def _facts(data: GuestpassRedeemedData) -> enriched.GuestpassFacts:
    """The redemption as the webhook reports it."""
    return enriched.GuestpassFacts(
        redemption_id=data.id, guestpass_id=data.guestpass_id, redeemed_at=data.date,
        session_id=data.session_id, invoice_id=data.invoice_id, total=data.total,
        balance=data.balance, used=data.used, transferred=data.transferred, expired=data.expired,
    )
