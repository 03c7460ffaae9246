"""The work every worker implementation does per event, identical in all three.

``enrich`` is the handler's step once the Zenoti lookups are served from a cache: no API call,
a ``MembershipFrozen`` built from the webhook's data and a cached guest. Keeping the API out
makes the comparison one of the frameworks (decode, validate, publish with a confirm, ack);
the API's cost is the sandbox's and the network's, the same whoever calls it.
``CachedFreeze`` is that step as a handler plugin of ours, under the name and event type of
the built-in ``membership-freeze``, so it consumes the same queue with the same topology.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from processor import Context, Event
from schemas.enriched import EnrichedGuest, MembershipFrozen
from schemas.webhooks import MembershipFreezeData
from schemas.zenoti import GuestMembership

HANDLER = "membership-freeze"
OUTPUT_KEY = MembershipFrozen.event_name
GUEST = EnrichedGuest(id="5b3f6c1e-8d3a-4c67-9b1f-2f1d0a7e9c21", code="G0042",
                      first_name="Ada", last_name="Lovelace", email="ada@example.com")


def enrich(key: str, tenant: str, event_type: str, timestamp: datetime | None,
           data: MembershipFreezeData) -> MembershipFrozen:
    """The enriched event of a validated freeze, its lookups served from the cache."""
    membership = GuestMembership(
        user_membership_id=data.user_membership_id,
        group_user_membership_id=data.group_user_membership_id, status=data.status,
        recurrence_status=data.recurrence_status, expiry_date=data.expiry_date,
        member_code=data.member_code, center=data.center, freeze=data.freeze,
    )
    return MembershipFrozen(
        tenant=tenant, event_id=key, event_type=event_type, event_timestamp=timestamp,
        handler=HANDLER, guest=GUEST, membership=membership, freeze=data.freeze,
        recurrence_status=data.recurrence_status,
    )


class CachedFreeze:
    """``membership-freeze`` with its enrichment served from the cache (see the module)."""

    name: ClassVar[str] = HANDLER
    event_types: ClassVar[tuple[str, ...]] = ("Guest.Membership.Freeze",)
    schema: ClassVar[type[BaseModel]] = MembershipFreezeData

    async def handle(self, event: Event[Any], ctx: Context) -> None:
        """Publish the enriched event; no log line (the baselines write none either)."""
        output = enrich(event.key, event.tenant, event.event_type, event.event_timestamp,
                        event.data)
        await ctx.publish(OUTPUT_KEY, output)
