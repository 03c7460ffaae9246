"""The Zenoti endpoints the sandbox serves, as pure functions of an ``Organisation``.

``route`` names the endpoint of a path (case-insensitive, like Zenoti's) and
``ZenotiApi.answer`` computes its status and body. No HTTP, auth or rate limiting here:
``processor.dev.sandbox.server`` wraps these in all three.

Point look-ups (REFERENCE 5.1-5.5) are answered here, center-wide lists (REFERENCE 5.8)
by ``processor.dev.sandbox.center_lists``; each page of a list is one call like any other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processor.dev.sandbox import lists, payloads
from processor.dev.sandbox.center_lists import CenterLists
from processor.dev.sandbox.lists import NOW, BadQuery, MembershipChanges
from processor.dev.sandbox.organisation import Organisation
from processor.dev.sandbox.payloads import Json

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


class ZenotiApi:
    """Answers ``Call``s from ``org``; unknown ids get Zenoti's 404 bodies (REFERENCE 4.5).

    ``list_keys`` and ``status_names`` shape the center-wide lists (``CenterLists``).
    """

    def __init__(self, org: Organisation, list_keys: Mapping[str, str] | None = None,
                 status_names: bool = False) -> None:
        self.org = org
        self.changes = MembershipChanges()
        self.lists = CenterLists(org, self.changes, list_keys, status_names)
        self._answerers: dict[str, Callable[[Call], Answer]] = {
            "invoice": self._invoice, "guest": self._guest,
            "guest_memberships": self._memberships, "guest_packages": self._packages,
            "center": self._center,
            "centers": lambda call: Answer(200, self.lists.centers(call.query)),
            "center_members": lambda call: Answer(
                200, self.lists.members(call.resource_id, call.query)),
            "membership_change_log": lambda call: Answer(200, self.lists.change_log(call.query)),
            "center_guests": lambda call: Answer(200, self.lists.guests(call.query)),
            "sales_accrual": lambda call: Answer(
                200, self.lists.sales_accrual(call.query, call.body)),
        }

    @property
    def membership_changes(self) -> dict[str, Json]:
        """user_membership_id -> fields that replace those of the generated membership."""
        return self.changes.fields

    def change_membership(self, membership_id: str, fields: Json,
                          at: datetime = NOW) -> None:
        """Change a membership from now on, as of ``at`` (what the change log reports)."""
        self.changes.change(membership_id, fields, at)

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
            return Answer(404, payloads.error(502, "Invalid center_id", center=None))
        return Answer(200, payloads.center(center))

    def _guest_list_problem(self, call: Call) -> Answer | None:
        """The error of a per-guest list call: no ``center_id`` (400) or unknown guest (404)."""
        if not call.query.get("center_id"):
            return Answer(400, payloads.error(400, "center_id is required"))
        if self.org.guest(call.resource_id) is None:
            return _unknown_guest()
        return None


def _unknown_guest() -> Answer:
    return Answer(404, payloads.error(505, "Invalid guest_id"))

