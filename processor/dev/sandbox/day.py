"""A realistic day of webhooks for one organisation: most guests appear once.

``plan_day(org, count, seed, mix)`` draws ``count`` deliveries spread over a day's opening
hours, in time order:

- a freeze is sent when it was made (``Membership.frozen_at``, as the API's change log has
  it); the other kinds at moments drawn over the day;
- a delivery concerns a guest not yet seen that day, while the organisation has one owning
  a record of its kind; past that (a small organisation) guests repeat, drawn uniformly;
- ``repeat_share`` of the single deliveries concern a guest already seen earlier that day;
- ``burst_share`` of the guest-pass and package deliveries come in correlated pairs less
  than a minute apart: a member and their guest at a class (two passes of one membership
  redeemed seconds apart; both name the member, as the sandbox's redemptions do) and a
  package redeemed then its status updated (``Guest.Package.Redemption``, which no handler
  serves, then ``Guest.Package.StatusUpdate``).

With 20,000 guests the default day of 5,000 deliveries has about three quarters of them
concerning a guest seen once that day, where a cache can do nothing. The same organisation,
count, seed, mix and shape give the same bytes.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from processor.dev.deliveries import (
    FREEZE,
    GUESTPASS,
    KNOWN_TYPES,
    PACKAGE_REDEMPTION,
    PACKAGE_STATUS,
    Delivery,
    encode,
)
from processor.dev.sandbox import events
from processor.dev.sandbox.organisation import BASE_DATE, Organisation
from processor.dev.sandbox.payloads import Json
from processor.dev.sandbox.records import Membership, Package

# The event kinds a day mixes, by the name ``--mix`` gives them.
KINDS: Mapping[str, str] = {"freeze": FREEZE, "guestpass": GUESTPASS, "package": PACKAGE_STATUS}
EVEN_MIX: Mapping[str, float] = dict.fromkeys(KINDS, 1 / len(KINDS))


def parse_mix(text: str) -> dict[str, float]:
    """``"freeze=0.4,guestpass=0.3,package=0.3"`` as shares summing to 1 (normalised). A bare
    kind counts 1; kinds left out get no deliveries. ``ValueError`` names the problem."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = (s.strip() for s in part.partition("="))
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} in mix; kinds are {', '.join(KINDS)}")
        if kind in shares:
            raise ValueError(f"kind {kind!r} is given twice in mix")
        try:
            shares[kind] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"share of {kind!r} is not a number: {value!r}") from None
        if not shares[kind] >= 0:
            raise ValueError(f"share of {kind!r} must be >= 0, got {value}")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError(f"mix {text!r} gives no kind a share above 0")
    return {kind: share / total for kind, share in shares.items()}


@dataclass(frozen=True, slots=True)
class DayShape:
    """How a day is made; the defaults are those of the benchmark's realistic day."""

    burst_share: float = 0.2  # of guest-pass and package deliveries, in pairs
    repeat_share: float = 0.06  # of single deliveries, about a guest seen earlier that day
    opens: timedelta = timedelta(hours=8)
    hours: float = 12.0
    burst_gap: tuple[float, float] = (3.0, 55.0)  # seconds between the two of a pair


@dataclass(frozen=True, slots=True)
class Day:
    """The deliveries in time order and, index for index, their kind and guest; ``bursts``
    holds the index pairs of the correlated pairs."""

    deliveries: list[Delivery]
    kinds: list[str]
    guests: list[str]
    bursts: list[tuple[int, int]]

    def once_seen_share(self) -> float:
        """The share of deliveries about a guest no other delivery of the day concerns."""
        seen = Counter(self.guests)
        return sum(seen[g] == 1 for g in self.guests) / len(self.guests) if self.guests else 0.0

    def handled(self) -> int:
        """Deliveries of the event types the project's handlers serve."""
        return sum(d.event_type in KNOWN_TYPES for d in self.deliveries)

    def summary(self) -> dict[str, object]:
        return {"deliveries": len(self.deliveries), "handled": self.handled(),
                "once_seen_share": round(self.once_seen_share(), 3),
                "burst_pairs": len(self.bursts), "guests": len(set(self.guests)),
                "by_kind": dict(sorted(Counter(self.kinds).items()))}


def plan_day(org: Organisation, count: int, seed: int,
             mix: Mapping[str, float] = EVEN_MIX, shape: DayShape = DayShape()) -> Day:
    """The day of ``count`` deliveries about ``org``; ``mix`` as ``parse_mix`` returns it.

    Kinds the organisation has no record for are left out of the mix; ``ValueError`` when
    none is left.
    """
    rng = random.Random(f"day:{seed}")
    draw = _Draw(org, rng, shape)
    units = draw.units(count, mix)
    starts = sorted(rng.uniform(0, shape.hours * 3600) for _ in units)
    planned: list[_Planned] = []
    for number, ((kind, size), start) in enumerate(zip(units, starts, strict=True)):
        moment = BASE_DATE + shape.opens + timedelta(seconds=start)
        planned += draw.unit(kind, size, moment, number)
    planned.sort(key=lambda p: p.moment)
    deliveries = encode(((p.event_type, p.data, p.moment) for p in planned), seed)
    return Day(deliveries=deliveries, kinds=[p.kind for p in planned],
               guests=[p.guest_id for p in planned], bursts=_pairs(planned))


@dataclass(frozen=True, slots=True)
class _Planned:
    kind: str
    event_type: str
    data: Json
    moment: datetime
    guest_id: str
    burst: int | None  # the unit number, for the two deliveries of a pair


def _pairs(planned: Sequence[_Planned]) -> list[tuple[int, int]]:
    first: dict[int, int] = {}
    pairs = []
    for index, item in enumerate(planned):
        if item.burst is not None:
            if item.burst in first:
                pairs.append((first[item.burst], index))
            else:
                first[item.burst] = index
    return pairs


def apportion(count: int, mix: Mapping[str, float]) -> dict[str, int]:
    """``count`` split by ``mix`` to whole deliveries (largest remainders), summing to it."""
    exact = {kind: count * share for kind, share in mix.items()}
    counts = {kind: int(value) for kind, value in exact.items()}
    by_remainder = sorted(exact, key=lambda kind: counts[kind] - exact[kind])
    for kind in by_remainder[: count - sum(counts.values())]:
        counts[kind] += 1
    return counts


Record = TypeVar("Record", Membership, Package)


class _Pool(Generic[Record]):
    """Records of one kind: fresh ones (guest not seen yet) in a shuffled order, those of
    guests already seen for repeats, and any one once the fresh run out."""

    def __init__(self, records: Sequence[Record], rng: random.Random) -> None:
        self.rng = rng
        self.order: list[Record] = list(records)
        rng.shuffle(self.order)
        self.next = 0
        self.by_guest: dict[str, list[Record]] = defaultdict(list)
        for record in self.order:
            self.by_guest[record.guest_id].append(record)
        self.of_seen: list[Record] = []

    def note(self, guest_id: str) -> None:
        """``guest_id`` has been seen: their records become repeat candidates."""
        self.of_seen += self.by_guest.get(guest_id, ())

    def pick(self, seen: set[str], repeat: bool) -> Record:
        if repeat and self.of_seen:
            return self.of_seen[self.rng.randrange(len(self.of_seen))]
        while self.next < len(self.order):
            record = self.order[self.next]
            self.next += 1
            if record.guest_id not in seen:
                return record
        return self.order[self.rng.randrange(len(self.order))]


class _Draw:
    """Picks the records of each unit (a single delivery or a pair) and makes their data."""

    def __init__(self, org: Organisation, rng: random.Random, shape: DayShape) -> None:
        self.org, self.rng, self.shape = org, rng, shape
        # A redemption names no center, so a reader looks at the member's home center first:
        # the day's redemptions are of memberships sold there, the usual case.
        passes = [m for m in org.memberships
                  if m.redemptions and m.center_id == org.guests[m.guest_id].center_id]
        self.frozen = _Pool([m for m in org.memberships if m.freeze is not None], rng)
        self.passes = _Pool(passes, rng)
        self.pass_pairs = _Pool([m for m in passes if len(m.redemptions) >= 2], rng)
        self.packages = _Pool(org.packages, rng)
        self.seen: set[str] = set()

    def units(self, count: int, mix: Mapping[str, float]) -> list[tuple[str, int]]:
        """The day's units, shuffled: ``(kind, 1)`` singles and ``(kind, 2)`` pairs."""
        sizes = {"freeze": len(self.frozen.order), "guestpass": len(self.passes.order),
                 "package": len(self.packages.order)}
        usable = {kind: share for kind, share in mix.items() if share > 0 and sizes[kind]}
        if not usable:
            raise ValueError(f"the organisation has no record for any kind of {dict(mix)}")
        units: list[tuple[str, int]] = []
        for kind, number in apportion(count, _normalised(usable)).items():
            pairable = kind == "package" or (kind == "guestpass" and self.pass_pairs.order)
            pairs = round(number * self.shape.burst_share / 2) if pairable else 0
            units += [(kind, 2)] * pairs + [(kind, 1)] * (number - 2 * pairs)
        self.rng.shuffle(units)
        return units

    def unit(self, kind: str, size: int, moment: datetime, number: int) -> list[_Planned]:
        repeat = size == 1 and self.rng.random() < self.shape.repeat_share
        if kind == "freeze":
            membership = self._use(self.frozen.pick(self.seen, repeat))
            return [_Planned(kind, FREEZE, events.membership_freeze(self.org, membership),
                             membership.frozen_at or moment, membership.guest_id, None)]
        if kind == "guestpass":
            return self._passes(size, repeat, moment, number)
        return self._package(size, repeat, moment, number)

    def _passes(self, size: int, repeat: bool, moment: datetime, number: int) -> list[_Planned]:
        pool = self.pass_pairs if size == 2 else self.passes
        membership = self._use(pool.pick(self.seen, repeat))
        first = self.rng.randrange(len(membership.redemptions) - size + 1)
        moments = [moment] if size == 1 else [moment, moment + self._gap()]
        return [_Planned("guestpass", GUESTPASS,
                         events.guestpass_redeemed(membership, membership.redemptions[first + i]),
                         at, membership.guest_id, number if size == 2 else None)
                for i, at in enumerate(moments)]

    def _package(self, size: int, repeat: bool, moment: datetime, number: int) -> list[_Planned]:
        package = self._use(self.packages.pick(self.seen, repeat))
        status = events.package_status(self.org, package)
        if size == 1:
            return [_Planned("package", PACKAGE_STATUS, status, moment, package.guest_id, None)]
        redeemed = events.package_redemption(self.org, package, moment, self.rng)
        return [_Planned("package", PACKAGE_REDEMPTION, redeemed, moment, package.guest_id, number),
                _Planned("package", PACKAGE_STATUS, status, moment + self._gap(),
                         package.guest_id, number)]

    def _use(self, record: Record) -> Record:
        if record.guest_id not in self.seen:
            self.seen.add(record.guest_id)
            for pool in (self.frozen, self.passes, self.pass_pairs):
                pool.note(record.guest_id)
            self.packages.note(record.guest_id)
        return record

    def _gap(self) -> timedelta:
        return timedelta(seconds=self.rng.uniform(*self.shape.burst_gap))


def _normalised(mix: Mapping[str, float]) -> dict[str, float]:
    total = sum(mix.values())
    return {kind: share / total for kind, share in mix.items()}
