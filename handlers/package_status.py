"""``Guest.Package.StatusUpdate`` -> ``guest.package.status_changed``.

Package webhooks name no guest (REFERENCE 3.7), so the guest is found through the package's
invoice (``invoice.id``, else ``sale_invoice.id``): one call, kept 30 days, and the floor,
since no documented endpoint maps many invoices to their guests. The webhook carries the
package itself (id, name, code, type, center, status), so it is not asked for; the guest's
details come from a center's guest snapshot when one is loaded, else from the invoice.
Only a webhook without its ``package`` block reads the guest and their series packages at
the webhook's center (two more calls).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pydantic import BaseModel

from handlers import _lookup
from processor import Context, Event, ResourceNotFound
from schemas.enriched import EnrichedGuest, PackageStatusChanged
from schemas.webhooks import PackageStatusData
from schemas.zenoti import GuestPackage, InvoiceGuest, InvoiceRef


class PackageStatus:
    """Publishes the package's new status with its guest and the package as Zenoti has it."""

    name: ClassVar[str] = "package-status"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Package.StatusUpdate",)
    schema: ClassVar[type[BaseModel]] = PackageStatusData
    outputs: ClassVar[tuple[type[BaseModel], ...]] = (PackageStatusChanged,)

    async def handle(self, event: Event[PackageStatusData], ctx: Context) -> None:
        """One call (the invoice); two more only when the webhook lacks the package. Logs
        ``calls``: the API calls this event made."""
        data, before = event.data, ctx.zenoti.calls
        what = f"package {data.user_package_id!r}"
        buyer = await _lookup.invoice_guest(ctx, data.invoice_id, what)
        if data.package is not None:
            guest, package = await _known_guest(ctx, buyer), _from_webhook(data)
        else:
            guest, package = await _point_look_ups(ctx, data, buyer.id)
        output = PackageStatusChanged.about(
            event, handler=self.name, guest=guest, package=package, status=data.status,
            user_package_state=data.user_package_state, invoice_id=data.invoice_id,
        )
        await ctx.publish(output.routing_key(), output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls - before, guest_id=buyer.id,
                     user_package_id=package.user_package_id, status=data.status)


async def _known_guest(ctx: Context, buyer: InvoiceGuest) -> EnrichedGuest:
    """The buyer as a loaded guests snapshot has them, else as the invoice names them: no
    call either way."""
    known = await ctx.zenoti.known_guest(buyer.id)
    if known is None:
        return EnrichedGuest.from_invoice(buyer)
    return EnrichedGuest.from_guest(known)


async def _point_look_ups(
    ctx: Context, data: PackageStatusData, guest_id: str
) -> tuple[EnrichedGuest, GuestPackage]:
    """The guest and their series packages at the webhook's center, at once;
    ``ResourceNotFound`` if the package is not among them."""
    guest, package = await asyncio.gather(
        ctx.zenoti.get_guest(guest_id),
        _lookup.package_at(ctx, guest_id, data.center.id, data.user_package_id),
    )
    if package is None:
        raise ResourceNotFound(
            f"package {data.user_package_id!r} is not among the series packages of guest "
            f"{guest_id!r} at center {data.center.id!r}"
        )
    return EnrichedGuest.from_guest(guest), package


def _from_webhook(data: PackageStatusData) -> GuestPackage:
    """The package as the webhook reports it (no dates: the webhook does not carry them)."""
    invoice = data.invoice if data.invoice and data.invoice.id else data.sale_invoice
    return GuestPackage(
        user_package_id=data.user_package_id, status=data.status,
        user_package_state=data.user_package_state, package=data.package, center=data.center,
        invoice=InvoiceRef.model_validate(invoice.model_dump()) if invoice else None,
    )
