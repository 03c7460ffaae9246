"""The Zenoti endpoints the sandbox serves, as pure functions of an ``Organisation``.

``ZenotiApi.endpoint`` names the endpoint of a path (case-insensitive, like Zenoti's) and
``ZenotiApi.answer`` computes its status and body. No HTTP, auth or rate limiting here:
``processor.sandbox.server`` wraps these in all three.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from processor.sandbox import payloads
from processor.sandbox.organisation import Organisation
from processor.sandbox.payloads import Json

# Matched whole (``fullmatch``), so a guest's sub-resources never reach the guest route.
_ROUTES = (
    ("invoice", re.compile(r"/v1/invoices/([^/]+)/?", re.IGNORECASE)),
    ("guest_memberships", re.compile(r"/v1/guests/([^/]+)/memberships/?", re.IGNORECASE)),
    ("guest_packages", re.compile(r"/v1/guests/([^/]+)/packages/?", re.IGNORECASE)),
    ("guest", re.compile(r"/v1/guests/([^/]+)/?", re.IGNORECASE)),
    ("center", re.compile(r"/v1/centers/([^/]+)/?", re.IGNORECASE)),
)
ENDPOINTS = tuple(name for name, _ in _ROUTES)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Json


@dataclass(frozen=True, slots=True)
class Call:
    """One routed request: which endpoint, the id in its path, its query."""

    endpoint: str
    resource_id: str
    query: Mapping[str, str]


def route(path: str, query: Mapping[str, str]) -> Call | None:
    """The ``Call`` for ``path``, or ``None`` when no endpoint serves it."""
    for name, pattern in _ROUTES:
        match = pattern.fullmatch(path)
        if match:
            return Call(endpoint=name, resource_id=match.group(1), query=query)
    return None


class ZenotiApi:
    """Answers ``Call``s from ``org``; unknown ids get Zenoti's 404 bodies (REFERENCE 4.5)."""

    def __init__(self, org: Organisation) -> None:
        self.org = org
        # Changes made through the sandbox's admin route, as Zenoti's own state would change:
        # user_membership_id -> fields that replace those of the generated membership.
        self.membership_changes: dict[str, Json] = {}
        self._answerers: dict[str, Callable[[Call], Answer]] = {
            "invoice": self._invoice,
            "guest": self._guest,
            "guest_memberships": self._memberships,
            "guest_packages": self._packages,
            "center": self._center,
        }

    def answer(self, call: Call) -> Answer:
        return self._answerers[call.endpoint](call)

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
            item.update(self.membership_changes.get(item["user_membership_id"], {}))
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
