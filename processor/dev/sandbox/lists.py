"""What Zenoti's list endpoints share in the sandbox: paging, dates, statuses, the clock,
and the changes made to memberships through the sandbox's admin route.

Paging follows Zenoti's pagination guide: ``page`` counts from 1, ``size`` is 10 unless
given and at most 100 (above: error 422 "You cannot request more than 100 items."), and
``page_info`` is ``{total, page, size}``. Not documented, so assumed here: ``total`` counts
records (not pages), a page past the end is empty, and a malformed number is a 400. Query
keys are matched case-blind (a third party pages a report with ``Page=&Size=`` against the
real API). A bad query raises ``BadQuery``, which the API answers with Zenoti's error body.

The sandbox's clock stands at the end of its today (``NOW``): every change of its day is in
the past, whatever the time of a run. Its dates are center-local and read as UTC where
Zenoti documents UTC (the change log's window).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from processor.dev.sandbox.organisation import BASE_DATE
from processor.dev.sandbox.payloads import Json
from processor.dev.sandbox.records import Membership

NOW = BASE_DATE + timedelta(days=1, seconds=-1)
MAX_SIZE = 100
DEFAULT_SIZE = 10
# Membership status and recurrence status (REFERENCE 5.2; the change log lists the same).
MEMBERSHIP_STATUSES = {1: "Active", 2: "InActive", 3: "Frozen", 4: "Cancelled", 5: "Expired",
                       6: "Closed", 7: "NotStarted", 8: "Suspended", 9: "Refund",
                       10: "Deleted", 12: "Failed", -1: "Default"}
_BY_NAME = {name.lower(): code for code, name in MEMBERSHIP_STATUSES.items()}

T = TypeVar("T")


class BadQuery(Exception):
    """A query Zenoti would refuse: answered ``status`` with ``{"error": {code, message}}``."""

    def __init__(self, message: str, status: int = 400, code: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code or status


def lowered(query: Mapping[str, str]) -> dict[str, str]:
    """The query with its keys in lower case (the first of repeated keys wins)."""
    out: dict[str, str] = {}
    for key, value in query.items():
        out.setdefault(key.lower(), value)
    return out


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    size: int

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Paging:
        """The paging a (lower-cased) query asks for; ``BadQuery`` when out of range."""
        page, size = _number(query, "page", 1), _number(query, "size", DEFAULT_SIZE)
        if size > MAX_SIZE:
            raise BadQuery("You cannot request more than 100 items.", status=422)
        if page < 1 or size < 1:
            raise BadQuery("page and size must be at least 1")
        return cls(page, size)

    def cut(self, items: Sequence[T]) -> list[T]:
        start = (self.page - 1) * self.size
        return list(items[start:start + self.size])

    def info(self, total: int) -> Json:
        return {"total": total, "page": self.page, "size": self.size}


def _number(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise BadQuery(f"{name} must be a whole number, got {value!r}") from None


def moment(query: Mapping[str, str], name: str, default: datetime | None = None
           ) -> datetime | None:
    """A date (``yyyy-mm-dd``, read as 00:00:00, as the change log documents) or a date and
    time (``T`` or a space between); ``default`` when absent, ``BadQuery`` when malformed."""
    value = query.get(name, "").strip()
    if not value:
        return default
    try:
        return datetime.fromisoformat(value.replace(" ", "T", 1).removesuffix("Z"))
    except ValueError:
        raise BadQuery(f"{name} must be a date (yyyy-mm-dd), got {value!r}") from None


def status(query: Mapping[str, str], name: str = "status") -> int | None:
    """A membership status given by number (``3``) or by name (``Frozen``, any case)."""
    value = query.get(name, "").strip()
    if not value:
        return None
    if value.lstrip("-").isdigit() and int(value) in MEMBERSHIP_STATUSES:
        return int(value)
    if value.lower() in _BY_NAME:
        return _BY_NAME[value.lower()]
    raise BadQuery(f"Invalid {name}: {value!r}")


def shown(code: int, names: bool) -> int | str:
    """A status as the sandbox serves it in center-wide lists: its number, or its name."""
    return MEMBERSHIP_STATUSES.get(code, str(code)) if names else code


class MembershipChanges:
    """Changes made through the sandbox's admin route, as Zenoti's own state would change:
    ``fields`` replace those of a membership's list items, ``moments`` date them."""

    def __init__(self) -> None:
        self.fields: dict[str, Json] = {}  # user_membership_id -> replaced fields
        self.moments: dict[str, list[datetime]] = {}

    def change(self, membership_id: str, fields: Json, at: datetime) -> None:
        key = membership_id.lower()
        self.fields.setdefault(key, {}).update(fields)
        self.moments.setdefault(key, []).append(at)

    def state(self, record: Membership) -> tuple[int, int]:
        """Status and recurrence status after the changes."""
        changed = self.fields.get(record.id, {})
        status, recurrence = changed.get("status"), changed.get("recurrence_status")
        return (status if isinstance(status, int) else record.status,
                recurrence if isinstance(recurrence, int) else record.recurrence_status)

    def moments_of(self, record: Membership) -> list[datetime]:
        """When the membership changed: sold, frozen, and through the admin route."""
        made = [record.sold_date, *([record.frozen_at] if record.frozen_at else [])]
        return made + self.moments.get(record.id, [])
