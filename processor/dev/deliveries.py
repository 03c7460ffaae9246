"""Webhook deliveries about a sandbox organisation, wrapped and encoded as Zenoti sends them.

``build_deliveries`` is pure: the same organisation, count, seed and ratio give the same
bytes. Known event types (the ones the project's handlers serve) name records of the
organisation, so a handler enriching them against the sandbox finds what it looks for;
a fraction ``unknown_ratio`` are event types no handler serves, to exercise parking.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from processor.dev.sandbox import events
from processor.dev.sandbox.organisation import BASE_DATE, Organisation
from processor.dev.sandbox.payloads import Json
from processor.ingress.signature import HEADER, sign

FREEZE = "Guest.Membership.Freeze"
GUESTPASS = "Guestpass.redeemed"
PACKAGE_STATUS = "Guest.Package.StatusUpdate"
KNOWN_TYPES = (FREEZE, GUESTPASS, PACKAGE_STATUS)
# Documented (REFERENCE 3.7), served by no handler; its name follows the others [INF].
PACKAGE_REDEMPTION = "Guest.Package.Redemption"
UNKNOWN_TYPES = ("Appointment.Started", "Guest.Membership.Reinstate", "Class.Booking.Approved")
# event_resource is null in Zenoti's membership samples; the others are the sandbox's guess.
_RESOURCES: dict[str, str | None] = {
    FREEZE: None, GUESTPASS: "Guestpass", PACKAGE_STATUS: "Package",
    PACKAGE_REDEMPTION: "Package",
    "Appointment.Started": "Appointment", "Guest.Membership.Reinstate": None,
    "Class.Booking.Approved": "Class",
}


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook call: the exact body bytes (what is signed) and what it is about."""

    body: bytes
    event_type: str
    event_id: str

    def headers(self, secret: str | None = None) -> dict[str, str]:
        """The request headers; signed with ``secret`` as Zenoti does, when one is given."""
        headers = {"Content-Type": "application/json"}
        if secret:
            headers[HEADER] = sign(secret, self.body)
        return headers


def build_deliveries(org: Organisation, count: int, seed: int,
                     unknown_ratio: float = 0.05) -> list[Delivery]:
    """``count`` deliveries with unique ``event_id``s and increasing timestamps."""
    if not 0.0 <= unknown_ratio <= 1.0:
        raise ValueError(f"unknown_ratio must be within [0, 1], got {unknown_ratio}")
    rng = random.Random(seed)
    picker = _Picker(org, rng)
    ids = _ObjectIds(rng)
    moment = BASE_DATE + timedelta(hours=9)
    deliveries = []
    for _ in range(count):
        moment += timedelta(seconds=rng.uniform(0.05, 2.0))
        unknown = rng.random() < unknown_ratio
        event_type, data = picker.unknown() if unknown else picker.known()
        ticks = moment.microsecond * 10 + rng.randint(0, 9)  # .NET keeps 7 digits
        deliveries.append(_wrap(event_type, data, moment, ticks, ids.next_pair(moment)))
    return deliveries


def encode(timeline: Iterable[tuple[str, Json, datetime]], seed: int) -> list[Delivery]:
    """One delivery per ``(event_type, data, moment)``, in the given order, with ids and
    timestamp ticks drawn from ``seed``; give the moments in increasing order, as Zenoti's
    ObjectIds grow with time."""
    rng = random.Random(seed)
    ids = _ObjectIds(rng)
    return [_wrap(event_type, data, moment, moment.microsecond * 10 + rng.randint(0, 9),
                  ids.next_pair(moment))
            for event_type, data, moment in timeline]


def _wrap(event_type: str, data: Json, moment: datetime, ticks: int,
          ids: tuple[str, str]) -> Delivery:
    """The envelope of REFERENCE 2.1, compact JSON, ``id`` a few counts above ``event_id``."""
    event_id, delivery_id = ids
    envelope = {
        "id": delivery_id,
        "event_id": event_id,
        "event_schema": "v1",
        "event_resource": _RESOURCES.get(event_type),
        "event_type": event_type,
        "event_timestamp": f"{moment:%Y-%m-%dT%H:%M:%S}.{ticks:07d}Z",
        "data": data,
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return Delivery(body=body, event_type=event_type, event_id=event_id)


class _ObjectIds:
    """MongoDB-style ObjectIds: 4 bytes of time, 5 random bytes per run, a 3-byte counter."""

    def __init__(self, rng: random.Random) -> None:
        self._process = rng.getrandbits(40)
        self._counter = rng.getrandbits(23)

    def next_pair(self, moment: datetime) -> tuple[str, str]:
        """``(event_id, id)``: ``id`` is two counts above, like Zenoti's samples."""
        seconds = int((moment - datetime(1970, 1, 1)).total_seconds())
        first = self._counter
        self._counter += 3
        return self._format(seconds, first), self._format(seconds, first + 2)

    def _format(self, seconds: int, counter: int) -> str:
        return f"{seconds:08x}{self._process:010x}{counter % (1 << 24):06x}"


class _Picker:
    """Draws the event type and ``data`` of the next delivery from the organisation."""

    def __init__(self, org: Organisation, rng: random.Random) -> None:
        self.org, self.rng = org, rng
        frozen = [m for m in org.memberships if m.freeze is not None]
        # A redemption names no center, so a reader can only list the member's memberships
        # at their home center: draw from memberships sold there, the usual case.
        redeemed = [(m, r) for m in org.memberships for r in m.redemptions
                    if m.center_id == org.guests[m.guest_id].center_id]
        makers: list[tuple[str, Callable[[], Json]]] = [
            (FREEZE, lambda: events.membership_freeze(org, rng.choice(frozen))),
            (GUESTPASS, lambda: events.guestpass_redeemed(*rng.choice(redeemed))),
            (PACKAGE_STATUS, lambda: events.package_status(org, rng.choice(org.packages))),
        ]
        pools = {FREEZE: frozen, GUESTPASS: redeemed, PACKAGE_STATUS: org.packages}
        self._known = [(name, make) for name, make in makers if pools[name]]

    def known(self) -> tuple[str, Json]:
        """An event a handler serves; an unknown one if the organisation has none to offer."""
        if not self._known:
            return self.unknown()
        event_type, make = self.rng.choice(self._known)
        return event_type, make()

    def unknown(self) -> tuple[str, Json]:
        event_type = self.rng.choice(UNKNOWN_TYPES)
        if event_type == "Appointment.Started":
            return event_type, events.appointment_started(self.org, self.rng)
        if event_type == "Class.Booking.Approved":
            return event_type, events.class_booking_approved(self.org, self.rng)
        membership = self.rng.choice(self.org.memberships)
        return event_type, events.membership_reinstate(self.org, membership)
