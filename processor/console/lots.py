"""The parking-lot pages: the lots, the parked in one (filters, paging), a message, the
unrouted types, and replay and purge through a confirmation step (``dlq``'s ``ParkingLot``).

Every read of a lot is one browsing pass under ``guard.viewing`` (a read slot and the lot's
lock) that keeps only what the page shows: the page's ``PAGE`` rows without headers or
bodies, a message's first copy, one sample body per type for at most ``TYPES`` types. A lot
of over ``LIMIT`` messages is not read at all ("10,000+": ``zenoti-events dlq`` reads any
size). A confirmation pins ``until`` (now, unless given) and the act uses the pinned form, so
it takes what was counted and nothing parked since; the act runs in the background
(``lot_jobs``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from processor import message
from processor.console import figures, guard, lot_jobs
from processor.console.common import SESSION, SETTINGS, actor, describe, html, moment, writer
from processor.console.common import field as text_field
from processor.console.common import number as digits
from processor.console.figures import LIMIT
from processor.console.pages import at, esc, fields, hidden, plain, summary, table, when
from processor.ops import dlq
from processor.ops.parking import Filter, ParkedMessage
from processor.ops.triage import survey
from processor.worker import plugins

PAGE = figures.PAGE
_SHOWN_ABOVE = frozenset({message.REASON, message.ERROR, message.TENANT, message.EVENT_TYPE,
                          message.ATTEMPT, message.DEAD_AT, message.RECEIVED_AT})
TYPES = figures.TYPES
_LABELS = (("event_type", "Event type"), ("tenant", "Tenant"), ("reason", "Reason"), ("id", "Id"),
           ("since", "Since"), ("until", "Until"))
_FIELDS = tuple(name for name, _ in _LABELS)
_ACTIONS = ("replay", "purge")
_TOO_MANY = (f"<p class='note' id='too-many'>Over {LIMIT:,} messages in this lot ({LIMIT:,}+): "
             "too many to browse here; use <code>zenoti-events dlq list</code> (narrow the "
             "filter there).</p>")


def add_routes(app: web.Application) -> None:
    guard.install(app)
    lot_jobs.install(app)
    app.router.add_get("/lots", _lots)
    app.router.add_get("/lot/{lot}", _parked)
    app.router.add_get("/types", _types)
    app.router.add_get("/lot/{lot}/message", _message)
    app.router.add_post("/lot/{lot}/confirm", _confirm)
    app.router.add_post("/lot/{lot}/act", _act)


def lot_names() -> list[str]:
    """Each installed handler's lot, then ``unrouted``."""
    return [*sorted(h.name for h in plugins.discover()), dlq.UNROUTED_LOT]


async def _lots(request: web.Request) -> web.Response:
    """Each lot and its depth (one passive declare each, bounded: "unavailable" if not)."""
    names = lot_names()
    depths = await figures.depths(request.app[SETTINGS], request.app[guard.GUARD], names)
    rows = [[f"<a href='/lot/{esc(name)}'>{esc(name)}</a>", esc(depths.get(name, "-"))]
            for name in names]
    return html(request, "Parking lots", table(["Lot", "Messages"], rows, "lots"))


async def _types(request: web.Request) -> web.Response:
    """Unrouted event types, and the installed handler whose schema accepts each sample."""
    kinds = figures.Types()
    if not await _look(request, dlq.UNROUTED_LOT, kinds.see):
        return html(request, "Unrouted event types", _TOO_MANY)
    found = survey(list(kinds.samples.values()), plugins.discover(),
                   request.app[SETTINGS].handler_event_types)
    for entry in found:  # the samples gave the candidates; the pass gave the figures
        seen = kinds.seen[entry.event_type]
        entry.count, entry.first_seen, entry.last_seen = (seen.count, seen.first_seen,
                                                          seen.last_seen)
    found.sort(key=lambda e: (-e.count, e.event_type))
    # Each type links to its messages in the lot: once HANDLER_EVENT_TYPES has it, replay them.
    rows = [[f"<a href='/lot/{dlq.UNROUTED_LOT}?"
             f"{esc(urlencode({'event_type': e.event_type}))}'>{esc(e.event_type)}</a>",
             esc(e.count), at(e.first_seen), at(e.last_seen),
             esc(", ".join(e.candidates) or "-"),
             f"<code class='block'>{esc(e.setting)}</code>" if e.setting else "-"]
            for e in found]
    more = (f"<p class='note'>{kinds.more} message(s) of more than {TYPES} types not shown."
            "</p>" if kinds.more else "") + (
        "<p class='note'>Set the setting on the workers and restart them, then open the type "
        "and replay its messages: they go to whichever handler takes them now.</p>")
    return html(request, "Unrouted event types", more + table(
        ["Event type", "Count", "First seen", "Last seen", "Would take it",
         "HANDLER_EVENT_TYPES to set"], rows))


def _lot(request: web.Request) -> str:
    lot = request.match_info["lot"]
    if lot not in lot_names():
        raise web.HTTPNotFound(text="no such lot")
    return lot


def _where(query: Any) -> Filter:
    return Filter(event_type=text_field(query, "event_type"),
                  reason=text_field(query, "reason"), message_id=text_field(query, "id"),
                  since=moment(query, "since"), until=moment(query, "until"),
                  tenant=text_field(query, "tenant"))


async def _look(request: web.Request, lot: str, see: Callable[[ParkedMessage], None]) -> bool:
    """One browsing pass over ``lot`` calling ``see`` (``guard.viewing``; 503 when busy or
    the broker fails); ``False`` when the lot holds over ``LIMIT``."""
    job = request.app[lot_jobs.JOBS].of(lot)
    if job is not None and job.running:
        raise guard.unavailable(f"a {job.action} of {lot} is running: its progress is on "
                                f"/lot/{lot}")
    async with (guard.viewing(request, lot), guard.broker_answers(request, "lot"),
                dlq.open_lot(request.app[SETTINGS], lot) as parking):
        return await parking.look(see, limit=LIMIT)


async def _parked(request: web.Request) -> web.Response:
    lot, q = _lot(request), request.query
    number = digits(q, "page") or 0
    job = request.app[lot_jobs.JOBS].of(lot)
    status = job.status() if job is not None else ""
    if job is not None and job.running:
        return html(request, f"Parked in {lot}", _filters(q) + status +
                    "<p class='note'>The list comes back when it ends: reload.</p>")
    listing = figures.Listing(_where(q), number * PAGE)
    if not await _look(request, lot, listing.see):
        return html(request, f"Parked in {lot}", _filters(q) + status + _TOO_MANY)
    rows = [[f"<a href='/lot/{esc(lot)}/message?{esc(urlencode({'id': m.message_id}))}'>"
             f"{esc(m.message_id)}</a>",
             esc(m.event_type), esc(m.tenant), esc(m.reason), esc(m.attempts),
             at(m.dead_at)] for m in listing.shown]
    others = {n: q[n] for n in _FIELDS if q.get(n)}
    pages = "".join(
        f" <a href='/lot/{esc(lot)}?{esc(urlencode({**others, 'page': n}))}'>{label}</a>"
        for n, label, shown in ((number - 1, "previous", number > 0),
                                (number + 1, "next", listing.start + PAGE < listing.matched))
        if shown)
    body = (f"{_filters(q)}{status}<p>{listing.matched} message(s), page {number + 1}{pages}"
            f"</p>{_actions(request, lot, q, listing.matched)}"
            + table(["Id", "Event type", "Tenant", "Reason", "Attempts", "Dead at"], rows))
    return html(request, f"Parked in {lot}", body)


def _filters(q: Any) -> str:
    return fields(_LABELS, q, "Filter")


def _actions(request: web.Request, lot: str, q: Any, matched: int) -> str:
    """Replay and purge of every message the filter selects (``matched``), not the page's."""
    session = request[SESSION]
    return "" if session.role != "write" else (
        f"<form method='post' action='/lot/{esc(lot)}/confirm' class='actions'>"
        f"<p class='note'>Acts on every message the filter selects ({matched}), on every "
        "page, after a confirmation.</p>"
        + hidden({"csrf": session.csrf, **{n: q.get(n, "") for n in _FIELDS}}) +
        f"<button name='action' value='replay' id='replay'>Replay the {matched} selected"
        f"</button> <button name='action' value='purge' id='purge'>Purge the {matched} "
        "selected</button></form>")


async def _message(request: web.Request) -> web.Response:
    lot, wanted = _lot(request), request.query.get("id", "")
    found: list[ParkedMessage] = []

    def first(parked: ParkedMessage) -> None:
        if parked.message_id == wanted and not found:
            found.append(parked)

    if not await _look(request, lot, first):
        return html(request, "Message", _TOO_MANY)
    if not found:
        raise web.HTTPNotFound(text="no such message")
    m = found[0]
    try:
        body = json.dumps(json.loads(m.body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        body = m.body.decode("utf-8", "replace")
    return html(request, f"Message {m.message_id}", _summary(m) + "<h2>Other headers</h2>"
                + table(["Header", "Value"], [[esc(k), esc(plain(v))] for k, v in
                                              m.headers.items() if k not in _SHOWN_ABOVE]) +
                f"<h2>Body</h2><pre id='body'>{esc(body)}</pre>")


def _summary(m: ParkedMessage) -> str:
    """Why and when ``m`` was parked, each once (its headers then leave out the error)."""
    return summary([("Reason", m.reason), ("Error", m.error), ("Tenant", m.tenant),
                    ("Event type", m.event_type), ("Attempts", m.attempts),
                    ("Received at", m.received_at and when(m.received_at)),
                    ("Dead at", m.dead_at and when(m.dead_at))])


async def _confirm(request: web.Request) -> web.Response:
    """How many the action would take; the form to act carries the filter with ``until``
    pinned (now, unless given) and that count."""
    lot = _lot(request)
    session = writer(request)
    form = await request.post()
    action = form.get("action")
    if action not in _ACTIONS:
        raise web.HTTPBadRequest(text="unknown action")
    until = moment(form, "until") or datetime.now(UTC)
    pinned = {**{n: form.get(n, "") for n in _FIELDS}, "until": until.isoformat()}
    listing = figures.Listing(replace(_where(form), until=until), 0)
    if not await _look(request, lot, listing.see):
        return html(request, "Confirm", _TOO_MANY)
    back = {n: form[n] for n in _FIELDS if isinstance(form.get(n), str) and form[n]}
    return html(request, "Confirm", f"<p>{esc(str(action).capitalize())} "
                f"{listing.matched} message(s) from {esc(lot)}?</p><p>Filter: "
                f"{esc(describe(replace(_where(form), until=None)))}; parked before "
                f"{esc(when(until))} (the act takes none parked since).</p>"
                f"<form method='post' action='/lot/{esc(lot)}/act'>"
                + hidden({"csrf": session.csrf, "action": action,
                          "expected": listing.matched, **pinned}) +
                f"<button type='submit' id='confirm'>Yes, {esc(action)} them</button> "
                f"<a href='/lot/{esc(lot)}?{esc(urlencode(back))}' id='cancel'>Cancel</a>"
                "</form>")


async def _act(request: web.Request) -> web.Response:
    """Start the confirmed action in the background (``lot_jobs``); 400 without the pinned
    ``until``, 409 while another runs."""
    lot = _lot(request)
    writer(request)
    form = await request.post()
    action = form.get("action")
    if action not in _ACTIONS:
        raise web.HTTPBadRequest(text="unknown action")
    where = _where(form)
    if where.until is None:
        raise web.HTTPBadRequest(text="until is required: act from the confirmation page")
    job = lot_jobs.LotJob(lot, str(action), where, actor(request), digits(form, "expected"))
    await request.app[lot_jobs.JOBS].start(request.app[SETTINGS],
                                           request.app[guard.GUARD].lock(lot), job)
    raise web.HTTPSeeOther(f"/lot/{lot}")
