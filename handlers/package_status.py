"""``Guest.Package.StatusUpdate`` -> ``guest.package.status_changed``.

Package webhooks name no guest (REFERENCE 3.7), so the guest is found through the package's
invoice (``invoice.id``, else ``sale_invoice.id``), then the package is read from the guest's
series packages at the webhook's center.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event, ResourceNotFound
from schemas.enriched import EnrichedGuest, PackageStatusChanged
from schemas.webhooks import PackageStatusData
from schemas.zenoti import GuestPackage, Invoice


class PackageStatus:
    """Publishes the package's new status with its guest and the package as Zenoti has it."""

    name: ClassVar[str] = "package-status"
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Package.StatusUpdate",)
    schema: ClassVar[type[BaseModel]] = PackageStatusData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Three calls: the invoice, then the guest and their packages together."""
        data: PackageStatusData = event.data
        guest_id = _guest_id(await ctx.zenoti.get_invoice(data.invoice_id), data)
        guest, packages = await asyncio.gather(
            ctx.zenoti.get_guest(guest_id), ctx.zenoti.list_packages(guest_id, data.center.id)
        )
        package = _matching(packages, data, guest_id)
        output = PackageStatusChanged(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=self.name,
            guest=EnrichedGuest.from_guest(guest), package=package, status=data.status,
            user_package_state=data.user_package_state, invoice_id=data.invoice_id,
        )
        await ctx.publish(PackageStatusChanged.event_name, output)
        ctx.log.info("event.enriched", calls=3, guest_id=guest_id,
                     user_package_id=package.user_package_id, status=data.status)


def _guest_id(invoice: Invoice, data: PackageStatusData) -> str:
    if invoice.guest is None:
        raise ResourceNotFound(
            f"invoice {invoice.id!r} of package {data.user_package_id!r} names no guest"
        )
    return invoice.guest.id


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
