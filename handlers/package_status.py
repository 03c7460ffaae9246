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
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, ResourceNotFound
from schemas.enriched import EnrichedGuest, PackageStatusChanged
from schemas.webhooks import PackageStatusData
from schemas.zenoti import GuestPackage, Invoice, InvoiceGuest, InvoiceRef


class PackageStatus:
    """Publishes the package's new status with its guest and the package as Zenoti has it."""

    name: ClassVar[str] = "package-status"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Package.StatusUpdate",)
    schema: ClassVar[type[BaseModel]] = PackageStatusData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """One call (the invoice); two more only when the webhook lacks the package."""
        data: PackageStatusData = event.data
        invoice = await ctx.zenoti.get_invoice(data.invoice_id)
        buyer = _buyer(invoice, data)
        guest_id = buyer.id
        if data.package is not None:
            known = await ctx.zenoti.known_guest(guest_id)
            guest = (EnrichedGuest.from_guest(known) if known is not None
                     else EnrichedGuest.from_invoice(buyer))
            package = _from_webhook(data)
        else:
            found, packages = await asyncio.gather(
                ctx.zenoti.get_guest(guest_id), ctx.zenoti.list_packages(guest_id, data.center.id)
            )
            guest, package = EnrichedGuest.from_guest(found), _matching(packages, data, guest_id)
        output = PackageStatusChanged(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=guest, package=package, status=data.status,
            user_package_state=data.user_package_state, invoice_id=data.invoice_id,
        )
        await ctx.publish(PackageStatusChanged.event_name, output)
        ctx.log.info("event.enriched", calls=ctx.zenoti.calls, guest_id=guest_id,
                     user_package_id=package.user_package_id, status=data.status)


def _buyer(invoice: Invoice, data: PackageStatusData) -> InvoiceGuest:
    if invoice.guest is None:
        raise ResourceNotFound(
            f"invoice {invoice.id!r} of package {data.user_package_id!r} names no guest"
        )
    return invoice.guest


def _from_webhook(data: PackageStatusData) -> GuestPackage:
    """The package as the webhook reports it (no dates: the webhook does not carry them)."""
    invoice = data.invoice if data.invoice and data.invoice.id else data.sale_invoice
    return GuestPackage(
        user_package_id=data.user_package_id, status=data.status,
        user_package_state=data.user_package_state, package=data.package, center=data.center,
        invoice=InvoiceRef.model_validate(invoice.model_dump()) if invoice else None,
    )


def _matching(packages: list[GuestPackage], data: PackageStatusData, guest_id: str) -> GuestPackage:
    """The guest's package the webhook is about; GUIDs compared case-blind."""
    wanted = data.user_package_id.lower()
    for package in packages:
        if package.user_package_id.lower() == wanted:
            return package
    raise ResourceNotFound(
        f"package {data.user_package_id!r} is not among the series packages of guest "
        f"{guest_id!r} at center {data.center.id!r}"
    )
