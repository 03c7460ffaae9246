"""The Zenoti endpoints the sandbox serves, as pure functions of an ``Organisation``.

``route`` names the endpoint of a path (case-insensitive, like Zenoti's) and
``ZenotiApi.answer`` computes its status and body. No HTTP, auth or rate limiting here:
``processor.sandbox.server`` wraps these in all three.

Point look-ups (REFERENCE 5.1-5.5) and center-wide lists (REFERENCE 5.8; paging in
``processor.sandbox.lists``); each page of a list is one call, like any other request.
What the docs leave open is marked assumed:

- ``centers``: ``GET /v1/centers?page&size`` -> ``centers``, ``page_info``.
- ``center_members``: ``GET /v1/centers/{id}/members?status&created_date&last_updated_date
  &page&size`` -> the documented row fields. Assumed: the wrapper key (``LIST_KEYS``), that
  the date filters mean "on or after", statuses as numbers (names with ``status_names``).
- ``membership_change_log``: ``GET /v1/guests/memberships/change_log?center_id&guest_id
  &start_date&end_date&page&size`` -> memberships changed in the window (UTC, by default
  the last 7 days), each as it is now. Assumed: the wrapper key, the order.
- ``center_guests``: ``GET /v1/guests?center_id&last_updated&page&size`` -> ``guests``,
  ``page_Info`` (sic). Assumed: items shaped as ``GET /v1/guests/{id}``.
- ``sales_accrual``: ``POST /v1/reports/sales/accrual_basis/flat_file?page&size`` -> ``sales``
  (one row per invoice line, with ``invoice_id`` and ``guest_id``), ``page_info``, ``total``.
  Assumed: the body ``{center_ids, start_date, end_date}`` (third parties'), 100 rows a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from processor.sandbox import lists, payloads
from processor.sandbox.lists import NOW, BadQuery, Paging
from processor.sandbox.organisation import Organisation
from processor.sandbox.payloads import Json
from processor.sandbox.records import Invoice, Membership

# Matched whole (``fullmatch``), so a guest's sub-resources never reach the guest route.
_ROUTES = (
    ("invoice", re.compile(r"/v1/invoices/([^/]+)/?", re.IGNORECASE)),
    ("membership_change_log", re.compile(r"/v1/guests/memberships/(change_log)/?",
                                         re.IGNORECASE)),
    ("guest_memberships", re.compile(r"/v1/guests/([^/]+)/memberships/?", re.IGNORECASE)),
    ("guest_packages", re.compile(r"/v1/guests/([^/]+)/packages/?", re.IGNORECASE)),
    ("guest", re.compile(r"/v1/guests/([^/]+)/?", re.IGNORECASE)),
    ("center_guests", re.compile(r"/v1/(guests)/?", re.IGNORECASE)),
    ("center_members", re.compile(r"/v1/centers/([^/]+)/members/?", re.IGNORECASE)),
    ("center", re.compile(r"/v1/centers/([^/]+)/?", re.IGNORECASE)),
    ("centers", re.compile(r"/v1/(centers)/?", re.IGNORECASE)),
    ("sales_accrual", re.compile(r"/v1/reports/sales/accrual_basis/(flat_file)/?",
                                 re.IGNORECASE)),
)
ENDPOINTS = tuple(name for name, _ in _ROUTES)
METHODS: Mapping[str, str] = {name: "POST" if name == "sales_accrual" else "GET"
                              for name in ENDPOINTS}
# Wrapper keys of the lists whose key Zenoti does not document: the sandbox's choice.
LIST_KEYS: Mapping[str, str] = {"center_members": "members",
                                "membership_change_log": "guest_memberships"}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Json


@dataclass(frozen=True, slots=True)
class Call:
    """One routed request: which endpoint, the id in its path, its query (keys in lower
    case) and, for a POST, its JSON body."""

    endpoint: str
    resource_id: str
    query: Mapping[str, str]
    body: Any = None


def route(path: str, query: Mapping[str, str]) -> Call | None:
    """The ``Call`` for ``path``, or ``None`` when no endpoint serves it."""
    for name, pattern in _ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return Call(endpoint=name, resource_id=match.group(1), query=lists.lowered(query))
    return None


@dataclass
class _Changes:
    """Changes made through the sandbox's admin route, as Zenoti's own state would change."""

    fields: dict[str, Json] = field(default_factory=dict)  # id -> replaced list-item fields
    moments: dict[str, list[datetime]] = field(default_factory=dict)


class ZenotiApi:
    """Answers ``Call``s from ``org``; unknown ids get Zenoti's 404 bodies (REFERENCE 4.5).

    ``list_keys`` overrides ``LIST_KEYS``; ``status_names`` serves statuses in center-wide
    lists by name (``"Frozen"``) instead of number (their tables type them as strings).
    """

    def __init__(self, org: Organisation, list_keys: Mapping[str, str] | None = None,
                 status_names: bool = False) -> None:
        self.org = org
        self.list_keys = {**LIST_KEYS, **(list_keys or {})}
        self.status_names = status_names
        self.changes = _Changes()
        self._sales: list[Invoice] | None = None
        self._answerers: dict[str, Callable[[Call], Answer]] = {
            "invoice": self._invoice, "guest": self._guest,
            "guest_memberships": self._memberships, "guest_packages": self._packages,
            "center": self._center, "centers": self._centers,
            "center_members": self._members, "membership_change_log": self._change_log,
            "center_guests": self._center_guests, "sales_accrual": self._sales_accrual,
        }

    @property
    def membership_changes(self) -> dict[str, Json]:
        """user_membership_id -> fields that replace those of the generated membership."""
        return self.changes.fields

    def change_membership(self, membership_id: str, fields: Json,
                          at: datetime = NOW) -> None:
        """Change a membership from now on, as of ``at`` (what the change log reports)."""
        key = membership_id.lower()
        self.changes.fields.setdefault(key, {}).update(fields)
        self.changes.moments.setdefault(key, []).append(at)

    def answer(self, call: Call) -> Answer:
        try:
            return self._answerers[call.endpoint](call)
        except BadQuery as problem:
            return Answer(problem.status, payloads.error(problem.code, problem.message))

    def _invoice(self, call: Call) -> Answer:
        invoice = self.org.invoice(call.resource_id)
        if invoice is None:
            return Answer(404, payloads.error(428, "Invoice not found", invoice=None))
        return Answer(200, payloads.invoice(self.org, invoice))

    def _guest(self, call: Call) -> Answer:
        guest = self.org.guest(call.resource_id)
        if guest is None:
            return _unknown_guest()
        return Answer(200, payloads.guest(self.org, guest))

    def _memberships(self, call: Call) -> Answer:
        problem = self._guest_list_problem(call)
        if problem:
            return problem
        owned = self.org.memberships_of(call.resource_id, call.query["center_id"])
        body = payloads.memberships(self.org, owned)
        for item in body["guest_memberships"]:
            item.update(self.changes.fields.get(item["user_membership_id"], {}))
        return Answer(200, body)

    def _packages(self, call: Call) -> Answer:
        problem = self._guest_list_problem(call)
        if problem:
            return problem
        owned = self.org.packages_of(call.resource_id, call.query["center_id"])
        return Answer(200, payloads.packages(self.org, owned))

    def _center(self, call: Call) -> Answer:
        center = self.org.center(call.resource_id)
        if center is None:
            return _unknown_center()
        return Answer(200, payloads.center(center))

    def _centers(self, call: Call) -> Answer:
        paging, centers = Paging.of(call.query), list(self.org.centers.values())
        items = [payloads.center_info(c) for c in paging.cut(centers)]
        return Answer(200, payloads.page("centers", items, paging.info(len(centers))))

    def _members(self, call: Call) -> Answer:
        """Memberships sold at the center; ``created_date`` and ``last_updated_date`` keep
        those sold, or changed, on or after the date."""
        if self.org.center(call.resource_id) is None:
            return _unknown_center()
        query, paging = call.query, Paging.of(call.query)
        wanted, created = lists.status(query), lists.moment(query, "created_date")
        updated = lists.moment(query, "last_updated_date")
        rows = [m for m in self.org.members_of(call.resource_id)
                if (wanted is None or self._state(m)[0] == wanted)
                and (created is None or m.sold_date >= created)
                and (updated is None or max(self._moments(m)) >= updated)]
        items = [payloads.member(self.org, m, *self._shown(m)) for m in paging.cut(rows)]
        key = self.list_keys["center_members"]
        return Answer(200, payloads.page(key, items, paging.info(len(rows))))

    def _change_log(self, call: Call) -> Answer:
        """Memberships changed within the window (default: the last 7 days), as they are
        now, the least recently changed first; ``center_id`` and ``guest_id`` narrow it."""
        query, paging = call.query, Paging.of(call.query)
        end = lists.moment(query, "end_date", NOW) or NOW
        start = lists.moment(query, "start_date", end - timedelta(days=7)) or end
        center, guest = query.get("center_id", "").lower(), query.get("guest_id", "").lower()
        changed = []
        for membership in self.org.memberships:
            if (center and membership.center_id != center) or (
                    guest and membership.guest_id != guest):
                continue
            within = [at for at in self._moments(membership) if start <= at <= end]
            if within:
                changed.append((max(within), membership.id, membership))
        changed.sort(key=lambda entry: entry[:2])
        items = [payloads.membership_change(m, *self._shown(m))
                 for _, _, m in paging.cut(changed)]
        key = self.list_keys["membership_change_log"]
        return Answer(200, payloads.page(key, items, paging.info(len(changed))))

    def _center_guests(self, call: Call) -> Answer:
        """Guests whose home is the center; ``last_updated`` keeps those created (the
        sandbox's guests never change) on or after the date."""
        center = call.query.get("center_id", "")
        if not center:
            return Answer(400, payloads.error(400, "center_id is required"))
        if self.org.center(center) is None:
            return _unknown_center()
        paging, since = Paging.of(call.query), lists.moment(call.query, "last_updated")
        rows = [g for g in self.org.guests_at(center) if since is None or g.created_date >= since]
        items = [{k: v for k, v in payloads.guest(self.org, g).items() if k != "error"}
                 for g in paging.cut(rows)]
        return Answer(200, payloads.page("guests", items, paging.info(len(rows)), "page_Info"))

    def _sales_accrual(self, call: Call) -> Answer:
        """One row per invoice line item sold within ``start_date``..``end_date`` at
        ``center_ids`` (all centers when absent), by sale date."""
        body = call.body if isinstance(call.body, dict) else {}
        dates = {k: str(body.get(k) or "") for k in ("start_date", "end_date")}
        start, end = lists.moment(dates, "start_date"), lists.moment(dates, "end_date")
        if start is None or end is None:
            raise BadQuery("start_date and end_date are required")
        centers = {str(c).lower() for c in body.get("center_ids") or []}
        rows = [row for invoice in self._invoices_by_date()
                if start <= invoice.invoice_date <= end
                and (not centers or invoice.center_id in centers)
                for row in payloads.sales_rows(self.org, invoice)]
        paging = Paging.of(call.query)
        total = {k: round(sum(r[k] for r in rows), 2)
                 for k in ("sales_exc_tax", "sales_inc_tax", "tax", "collected")}
        return Answer(200, {**payloads.page("sales", paging.cut(rows), paging.info(len(rows))),
                            "total": total})

    def _state(self, record: Membership) -> tuple[int, int]:
        """Status and recurrence status, after changes made through the admin route."""
        changed = self.changes.fields.get(record.id, {})
        status, recurrence = changed.get("status"), changed.get("recurrence_status")
        return (status if isinstance(status, int) else record.status,
                recurrence if isinstance(recurrence, int) else record.recurrence_status)

    def _shown(self, record: Membership) -> tuple[int | str, int | str]:
        status, recurrence = self._state(record)
        return lists.shown(status, self.status_names), lists.shown(recurrence, self.status_names)

    def _moments(self, record: Membership) -> list[datetime]:
        """When the membership changed: sold, frozen, and admin changes."""
        made = [record.sold_date, *([record.frozen_at] if record.frozen_at else [])]
        return made + self.changes.moments.get(record.id, [])

    def _invoices_by_date(self) -> list[Invoice]:
        if self._sales is None:
            self._sales = sorted(self.org.invoices.values(),
                                 key=lambda i: (i.invoice_date, i.number))
        return self._sales

    def _guest_list_problem(self, call: Call) -> Answer | None:
        """The error of a per-guest list call: no ``center_id`` (400) or unknown guest (404)."""
        if not call.query.get("center_id"):
            return Answer(400, payloads.error(400, "center_id is required"))
        if self.org.guest(call.resource_id) is None:
            return _unknown_guest()
        return None


def _unknown_guest() -> Answer:
    return Answer(404, payloads.error(505, "Invalid guest_id"))


def _unknown_center() -> Answer:
    return Answer(404, payloads.error(502, "Invalid center_id", center=None))
