"""Zenoti's center-wide lists in the sandbox (REFERENCE 5.8), as pure functions of an
organisation and the changes made to it. Paging, dates and statuses: ``lists``.

What the docs leave open is marked assumed:

- ``GET /v1/centers?page&size`` -> ``centers``, ``page_info``.
- ``GET /v1/centers/{id}/members?status&created_date&last_updated_date&page&size`` -> the
  documented row fields. Assumed: the wrapper key (``LIST_KEYS``), that the date filters mean
  "on or after", that members of a center are the memberships sold there, statuses as
  numbers (names with ``status_names``).
- ``GET /v1/guests/memberships/change_log?center_id&guest_id&start_date&end_date&page&size``
  -> memberships changed in the window (UTC, by default the last 7 days), each as it is now.
  Assumed: the wrapper key, the order (least recently changed first).
- ``GET /v1/guests?center_id&last_updated&page&size`` -> ``guests``, ``page_Info`` (sic).
  Assumed: items shaped as ``GET /v1/guests/{id}``, guests of a center are those at home there.
- ``POST /v1/reports/sales/accrual_basis/flat_file?page&size`` -> ``sales`` (one row per
  invoice line, with ``invoice_id`` and ``guest_id``), ``page_info``, ``total``. Assumed: the
  body ``{center_ids, start_date, end_date}`` (third parties'), at most 100 rows a page.

Each method returns a 200 body or raises ``BadQuery``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from processor.dev.sandbox import lists, payloads
from processor.dev.sandbox.lists import NOW, BadQuery, MembershipChanges, Paging
from processor.dev.sandbox.organisation import Organisation
from processor.dev.sandbox.payloads import Json
from processor.dev.sandbox.records import Invoice, Membership

# Wrapper keys of the lists whose key Zenoti does not document: the sandbox's choice.
LIST_KEYS: Mapping[str, str] = {"center_members": "members",
                                "membership_change_log": "guest_memberships"}
_UNKNOWN_CENTER = BadQuery("Invalid center_id", status=404, code=502)

Query = Mapping[str, str]


class CenterLists:
    """The lists of ``org``; ``list_keys`` overrides ``LIST_KEYS``."""

    def __init__(self, org: Organisation, changes: MembershipChanges,
                 list_keys: Mapping[str, str] | None = None, status_names: bool = False) -> None:
        self.org, self.changes, self.status_names = org, changes, status_names
        self.keys = {**LIST_KEYS, **(list_keys or {})}
        self._sales: list[Invoice] | None = None

    def centers(self, query: Query) -> Json:
        paging, centers = Paging.of(query), list(self.org.centers.values())
        items = [payloads.center_info(c) for c in paging.cut(centers)]
        return payloads.page("centers", items, paging.info(len(centers)))

    def members(self, center_id: str, query: Query) -> Json:
        if self.org.center(center_id) is None:
            raise _UNKNOWN_CENTER
        paging, wanted = Paging.of(query), lists.status(query)
        created = lists.moment(query, "created_date")
        updated = lists.moment(query, "last_updated_date")
        rows = [m for m in self.org.members_of(center_id)
                if (wanted is None or self.changes.state(m)[0] == wanted)
                and (created is None or m.sold_date >= created)
                and (updated is None or max(self.changes.moments_of(m)) >= updated)]
        items = [payloads.member(self.org, m, *self._shown(m)) for m in paging.cut(rows)]
        return payloads.page(self.keys["center_members"], items, paging.info(len(rows)))

    def change_log(self, query: Query) -> Json:
        paging = Paging.of(query)
        end = lists.moment(query, "end_date", NOW) or NOW
        start = lists.moment(query, "start_date", end - timedelta(days=7)) or end
        center, guest = query.get("center_id", "").lower(), query.get("guest_id", "").lower()
        changed: list[tuple[datetime, str, Membership]] = []
        for membership in self.org.memberships:
            if (center and membership.center_id != center) or (
                    guest and membership.guest_id != guest):
                continue
            within = [at for at in self.changes.moments_of(membership) if start <= at <= end]
            if within:
                changed.append((max(within), membership.id, membership))
        changed.sort(key=lambda entry: entry[:2])
        items = [payloads.membership_change(m, *self._shown(m))
                 for _, _, m in paging.cut(changed)]
        return payloads.page(self.keys["membership_change_log"], items,
                             paging.info(len(changed)))

    def guests(self, query: Query) -> Json:
        """Guests at home at the center; ``last_updated`` keeps those created (the sandbox's
        guests never change) on or after the date."""
        center = query.get("center_id", "")
        if not center:
            raise BadQuery("center_id is required")
        if self.org.center(center) is None:
            raise _UNKNOWN_CENTER
        paging, since = Paging.of(query), lists.moment(query, "last_updated")
        rows = [g for g in self.org.guests_at(center) if since is None or g.created_date >= since]
        items = [{k: v for k, v in payloads.guest(self.org, g).items() if k != "error"}
                 for g in paging.cut(rows)]
        return payloads.page("guests", items, paging.info(len(rows)), "page_Info")

    def sales_accrual(self, query: Query, body: Any) -> Json:
        """Rows of the invoices sold within ``start_date``..``end_date`` at ``center_ids``
        (every center when absent), by sale date."""
        body = body if isinstance(body, dict) else {}
        dates = {k: str(body.get(k) or "") for k in ("start_date", "end_date")}
        start, end = lists.moment(dates, "start_date"), lists.moment(dates, "end_date")
        if start is None or end is None:
            raise BadQuery("start_date and end_date are required")
        centers = {str(c).lower() for c in body.get("center_ids") or []}
        rows = [row for invoice in self._invoices_by_date()
                if start <= invoice.invoice_date <= end
                and (not centers or invoice.center_id in centers)
                for row in payloads.sales_rows(self.org, invoice)]
        paging = Paging.of(query)
        total = {k: round(sum(r[k] for r in rows), 2)
                 for k in ("sales_exc_tax", "sales_inc_tax", "tax", "collected")}
        return {**payloads.page("sales", paging.cut(rows), paging.info(len(rows))),
                "total": total}

    def _shown(self, record: Membership) -> tuple[int | str, int | str]:
        status, recurrence = self.changes.state(record)
        return lists.shown(status, self.status_names), lists.shown(recurrence, self.status_names)

    def _invoices_by_date(self) -> list[Invoice]:
        if self._sales is None:
            self._sales = sorted(self.org.invoices.values(),
                                 key=lambda i: (i.invoice_date, i.number))
        return self._sales
