"""The enriched events the built-in handlers publish to ``zenoti.enriched``.

Each joins four things: the webhook's identity (tenant, event id, type, time, handler), the
guest as Zenoti has it now, the membership or package as Zenoti has it now (the whole list
item, unknown fields included), and the facts only the webhook carries (freeze dates, pass
counts, package status). ``event_name`` is the routing key a consumer binds to.

Every output is versioned (``Output``): ``event_name`` is its stable name, ``version`` its
schema's major version, carried in the body as ``schema_version``. A breaking change is a new
class with ``version`` one higher, published beside the old one for a deprecation window under
the routing key ``routing_key_of`` gives it (``docs/contract.md``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Protocol, Self

from pydantic import BaseModel, computed_field

from schemas.zenoti import (
    CenterRef,
    Freeze,
    Guest,
    GuestMembership,
    GuestPackage,
    InvoiceGuest,
    Number,
    Phone,
)

__all__ = [
    "EnrichedEvent",
    "EnrichedGuest",
    "GuestpassFacts",
    "GuestpassRedeemed",
    "MembershipFrozen",
    "Output",
    "PackageStatusChanged",
    "SourceEvent",
    "routing_key_of",
]


def routing_key_of(output: type[BaseModel]) -> str:
    """The routing key ``output`` is published under: its ``event_name`` at version 1 (the
    key every consumer bound before outputs had versions), ``<event_name>.v<N>`` from
    version 2 on, so that a queue bound to the old key never receives the new shape.
    ``output`` is any model with the ``event_name`` and ``version`` class attributes."""
    name: str = getattr(output, "event_name")  # noqa: B009 - duck-typed: plugins' own models
    version: int = getattr(output, "version", 1)
    return name if version == 1 else f"{name}.v{version}"


class Output(BaseModel):
    """A versioned output: ``event_name`` (stable across versions: the CloudEvents ``type``)
    and ``version`` (its schema's major version) name its schema; the body carries
    ``schema_version``, always equal to ``version`` (computed, so it cannot disagree)."""

    event_name: ClassVar[str]
    version: ClassVar[int] = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def schema_version(self) -> int:
        """The major version of this output's schema (``docs/contract.md``)."""
        return type(self).version

    @classmethod
    def routing_key(cls) -> str:
        """The routing key this output is published under (``routing_key_of``)."""
        return routing_key_of(cls)


class EnrichedGuest(BaseModel):
    """Who the event is about; ``home_center`` is the guest's own center."""

    id: str
    code: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    mobile_phone: Phone | None = None
    home_center: CenterRef | None = None

    @classmethod
    def from_guest(cls, guest: Guest) -> EnrichedGuest:
        """The guest block of ``guest`` as ``GET /v1/guests/{id}`` returned it."""
        info = guest.personal_info
        home = CenterRef(id=guest.center_id, name=guest.center_name) if guest.center_id else None
        return cls(
            id=guest.id,
            code=guest.code,
            first_name=info.first_name,
            last_name=info.last_name,
            email=info.email,
            mobile_phone=info.mobile_phone,
            home_center=home,
        )

    @classmethod
    def from_invoice(cls, guest: InvoiceGuest) -> EnrichedGuest:
        """The guest block of an invoice (``GET /v1/invoices/{id}``): name and email, no
        phone or home center; used where asking for the guest would cost a call."""
        return cls(id=guest.id, first_name=guest.first_name, last_name=guest.last_name,
                   email=guest.email)


class SourceEvent(Protocol):
    """The webhook event an enriched event is about: what ``processor.Event`` carries (named
    here as a protocol, so that ``schemas`` imports nothing of ``processor``)."""

    @property
    def key(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def event_timestamp(self) -> datetime | None: ...


class EnrichedEvent(Output):
    """What every enriched event carries. ``event_id`` is the worker's idempotency key of
    the webhook (``event_id``, else ``id``, else a body hash) so consumers can de-duplicate."""

    tenant: str
    event_id: str
    event_type: str
    event_timestamp: datetime | None = None
    handler: str
    guest: EnrichedGuest

    @classmethod
    def about(
        cls, event: SourceEvent, *, handler: str, guest: EnrichedGuest, **fields: Any
    ) -> Self:
        """This kind of enriched event about ``event``, made by ``handler``: the webhook's
        identity (``tenant``, ``event.key`` as ``event_id``, ``event_type``,
        ``event_timestamp``), ``handler`` and ``guest`` set here, ``fields`` the kind's own.
        A name the kind has no field for raises ``TypeError`` (the model would drop it
        silently); a value it does not accept, pydantic's ``ValidationError``."""
        unknown = sorted(fields.keys() - cls.model_fields.keys())
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
        return cls(
            tenant=event.tenant, event_id=event.key, event_type=event.event_type,
            event_timestamp=event.event_timestamp, handler=handler, guest=guest, **fields,
        )


class MembershipFrozen(EnrichedEvent):
    """A guest's membership was frozen; ``freeze`` is the webhook's, ``membership`` is now."""

    event_name: ClassVar[str] = "guest.membership.frozen"
    version: ClassVar[int] = 1

    membership: GuestMembership
    freeze: Freeze | None = None
    recurrence_status: int | None = None


class GuestpassFacts(BaseModel):
    """The redemption as the webhook reports it: counts of this pass after the redemption."""

    redemption_id: str | None = None
    guestpass_id: str | None = None
    redeemed_at: datetime | None = None
    session_id: int | None = None
    invoice_id: str | None = None
    total: Number | None = None
    balance: Number | None = None
    used: Number | None = None
    transferred: Number | None = None
    expired: Number | None = None


class GuestpassRedeemed(EnrichedEvent):
    """A guest pass was redeemed; the membership carries ``guestpass_total/balance`` now."""

    event_name: ClassVar[str] = "guest.guestpass.redeemed"
    version: ClassVar[int] = 1

    membership: GuestMembership
    guestpass: GuestpassFacts


class PackageStatusChanged(EnrichedEvent):
    """A guest package changed status; ``status``/``user_package_state`` are the webhook's."""

    event_name: ClassVar[str] = "guest.package.status_changed"
    version: ClassVar[int] = 1

    package: GuestPackage
    status: int | None = None
    user_package_state: int | None = None
    invoice_id: str
