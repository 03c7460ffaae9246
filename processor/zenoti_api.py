"""``ZenotiApi``: the Zenoti API as a handler sees it through ``ctx.zenoti``.

A protocol, so that handlers and their tests depend on what they call, never on the client
behind it: the worker gives each event a view of ``processor.zenoti.ZenotiClient`` (which
satisfies this protocol, checked by mypy where the worker builds the ``Context``), and a test
may give anything with these members (``processor.testing`` gives a real client talking to the
sandbox Zenoti).

Every call may raise the exception that is the message's fate (``processor.errors``):
``ResourceNotFound`` when Zenoti says the resource does not exist (dead letter),
``RateLimited``/``ZenotiUnavailable``/``UnexpectedResponse`` when it may answer later (retry),
``PermanentError`` for any other refusal (dead letter). A handler lets them propagate.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from schemas.zenoti import CenterMember, Guest, GuestMembership, GuestPackage, Invoice

__all__ = ["ZenotiApi"]


@runtime_checkable
class ZenotiApi(Protocol):
    """One tenant's Zenoti, for one event: answers may come from a cache or a center's
    snapshot; lists of memberships and packages are never older than the event."""

    @property
    def calls(self) -> int:
        """API requests made so far through this object; an answer from the cache or a snapshot
        costs none. The worker gives each event a view of its own, starting at 0; a context
        may be shared in a test, so a handler counting its event's calls reads it before and
        after."""
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice:
        """``GET /v1/invoices/{id}``: the invoice, whose ``guest`` leads to the guest."""
        ...

    async def get_guest(self, guest_id: str) -> Guest:
        """``GET /v1/guests/{id}``: the guest's details, always asked of the API."""
        ...

    async def guest(self, guest_id: str, center_id: str | None = None) -> Guest:
        """The guest from a center's snapshot when one serves, else as ``get_guest``."""
        ...

    async def known_guest(self, guest_id: str) -> Guest | None:
        """The guest if a loaded snapshot has them, else ``None``; never an API call."""
        ...

    async def member(
        self, user_membership_id: str, center_id: str | None
    ) -> tuple[CenterMember, str] | None:
        """The center-member row of a user membership and the id of its center, from a
        snapshot (``center_id`` narrows the search when known); ``None`` when no snapshot
        serves it: then find the guest with point look-ups."""
        ...

    async def list_memberships(self, guest_id: str, center_id: str) -> list[GuestMembership]:
        """``GET /v1/guests/{id}/memberships`` at ``center_id`` (mandatory with an API key)."""
        ...

    async def list_packages(self, guest_id: str, center_id: str) -> list[GuestPackage]:
        """``GET /v1/guests/{id}/packages`` at ``center_id``: the guest's series packages."""
        ...
