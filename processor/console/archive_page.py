"""The archive page (``/archive``): the deliveries of a window (time, tenant, event type), the
first ``SHOWN`` of them, and, for a write session, replaying the window after a confirmation
that says how many (a dry run). Finding and replaying are ``processor.ops.archive``'s
``find`` and ``run_replay``, the code behind ``zenoti-events replay``; a replay runs in the
background at ``RATE`` copies a second, one at a time (a find and a dry run read for at most
``READ_WAIT`` seconds, each holding one of the console's read slots, ``guard.reading``), its
progress on this page.

The confirmation pins the window (``until`` included) in its form, with the copies it
counted (``expected``). The act counts again (a fresh dry run) and refuses (409) when the
count differs: the replay does what was confirmed. ``console.action`` lines: ``archive_replay``
as it starts (count: that fresh count, ``confirmed_expected``: the confirmed one) and
``archive_replayed`` as it ends, in ``finally`` (count: the copies sent so far, and the error
if it failed or was stopped)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from processor.broker.stream import ARCHIVE
from processor.console import guard
from processor.console.common import SESSION, SETTINGS, Actor, actor, html, moment, writer
from processor.console.common import field as text_field
from processor.console.pages import at, esc, fields, hidden, table, when
from processor.ops import archive, replay
from processor.settings import Settings

SHOWN = 100
RATE = 1.0  # copies a second: the CLI's default, about 40 % of one organisation's budget
READ_WAIT = 60.0  # seconds a find or a confirmation's count may read (TimeoutError: narrower)
_LABELS = (("since", "Since (required)"), ("until", "Until"), ("tenant", "Tenant"),
           ("event_type", "Event type"))


@dataclass
class Replays:
    """The console's replay: the one running or the last one, and its live summary."""

    plan: replay.Plan | None = None
    summary: replay.Summary = field(default_factory=replay.Summary)
    task: asyncio.Task[None] | None = None
    error: str = ""

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


REPLAYS = web.AppKey("replays", Replays)


def install(app: web.Application) -> None:
    guard.install(app)
    app[REPLAYS] = Replays()
    app.router.add_get("/archive", _page)
    app.router.add_post("/archive/confirm", _confirm)
    app.router.add_post("/archive/act", _act)

    async def close(app: web.Application) -> None:
        await app[REPLAYS].close()

    app.on_cleanup.append(close)


def _window(query: Any) -> replay.Window | None:
    """The window a query or form names; ``None`` without ``since``."""
    since = moment(query, "since")
    if since is None:
        return None
    until = moment(query, "until") or datetime.now(UTC)
    return replay.Window(since, until, text_field(query, "tenant"),
                         text_field(query, "event_type"))


def _plan(settings: Settings, window: replay.Window, by: str, dry_run: bool) -> replay.Plan:
    return replay.Plan(window, archive.handler_bindings(settings), None, by, RATE, dry_run,
                       idle=1.0, confirm_timeout=settings.confirm_timeout)


async def _page(request: web.Request) -> web.Response:
    q = request.query
    form = (fields(_LABELS, q, "Find") + "<p class='note'>Times in ISO 8601, UTC unless they "
            "say (e.g. 2026-12-03T08:00Z); since is required.</p>")
    window = _window(q)
    found = "" if window is None else await _found(request, window)
    return html(request, "Archive", form + _status(request.app[REPLAYS]) + found)


async def _found(request: web.Request, window: replay.Window) -> str:
    async with guard.reading(request):
        try:
            async with asyncio.timeout(READ_WAIT):
                connection = await archive.connection(request.app[SETTINGS], "console")
                async with connection:
                    shown, more = await archive.find(connection, window, limit=SHOWN,
                                                     idle=1.0)
        except Exception as exc:  # the broker down, no stream, too long a read: on the page
            request.app[guard.GUARD].failed("archive", exc)
            return f"<p class='down'>Archive unavailable ({esc(type(exc).__name__)})</p>"
        request.app[guard.GUARD].answered("archive")
    rows = [[esc(d.offset), at(d.received_at), esc(d.tenant or "-"),
             esc(d.event_type or "-"), esc(d.message_id or "-"),
             "parked by the ingress" if d.parked else ""] for d in shown]
    count = f"The first {SHOWN} deliveries" if more else _many(len(shown), "delivery",
                                                                  "deliveries").capitalize()
    return (f"<p id='found'>{count} received in {_span(window)}</p>"
            + (_replay_form(request, window) if shown else "")
            + table(["Offset", "Received", "Tenant", "Event type", "Message id", "Note"], rows,
                    "deliveries"))


def _replay_form(request: web.Request, window: replay.Window) -> str:
    session = request[SESSION]
    if session.role != "write":
        return ""
    return ("<form method='post' action='/archive/confirm' class='actions'><p class='note'>"
            "Replays every delivery of the window (not only those shown), after a "
            "confirmation that counts them.</p>" + hidden({"csrf": session.csrf, **_fields(window)})
            + "<button type='submit' id='replay'>Replay this window</button></form>")


def _fields(window: replay.Window) -> dict[str, object]:
    return {"since": window.since.isoformat(), "until": window.until.isoformat(),
            "tenant": window.tenant or "", "event_type": window.event_type or ""}


def _status(replays: Replays) -> str:
    if replays.plan is None:
        return ""
    s, w = replays.summary, replays.plan.window
    state = "running" if replays.running else (f"failed: {replays.error}" if replays.error
                                               else "finished")
    return (f"<p id='replay-status'>Replay of {_span(w)} {esc(state)}: read {s.read}, selected "
            f"{s.selected}, sent {sum(s.published.values())}, skipped "
            f"{sum(s.skipped.values())}</p>")


async def _dry(request: web.Request, window: replay.Window) -> replay.Summary:
    """What replaying ``window`` would send (a dry run, in a read slot); 503 if unreadable."""
    settings = request.app[SETTINGS]
    async with guard.reading(request):
        try:
            async with asyncio.timeout(READ_WAIT):
                summary = await archive.run_replay(settings, _plan(settings, window, "-", True),
                                                   replay.Summary())
        except Exception as exc:  # the broker down, no stream, too long a read
            request.app[guard.GUARD].failed("archive", exc)
            raise guard.unavailable(f"archive unavailable ({type(exc).__name__})") from None
    request.app[guard.GUARD].answered("archive")
    return summary


async def _confirm(request: web.Request) -> web.Response:
    session = writer(request)
    window = _window(await request.post())
    if window is None:
        raise web.HTTPBadRequest(text="since is required")
    dry = await _dry(request, window)
    copies = sum(dry.published.values())
    targets = ", ".join(f"{h}: {n}" for h, n in sorted(dry.published.items())) or "none"
    return html(request, "Confirm", f"<p>Replay {_many(dry.selected, 'delivery', 'deliveries')}"
                f" received in {_span(window)}: {_many(copies, 'copy', 'copies')} "
                f"({esc(targets)}), {sum(dry.skipped.values())} skipped, "
                f"at most {RATE:g} a second?</p><form method='post' action='/archive/act'>"
                + hidden({"csrf": session.csrf, "expected": copies, **_fields(window)})
                + "<button type='submit' id='confirm'>Yes, replay them</button> "
                f"<a href='/archive?{esc(urlencode(_fields(window)))}' id='cancel'>Cancel</a>"
                "</form>")


async def _act(request: web.Request) -> web.Response:
    """Start the confirmed replay: 400 without the pinned window, 409 while one runs or when
    the window now counts other than ``expected``."""
    writer(request)
    form = await request.post()
    window = _window(form)
    if window is None or moment(form, "until") is None:
        raise web.HTTPBadRequest(text="since and until are required: act from the "
                                 "confirmation page")
    replays = request.app[REPLAYS]
    if replays.running:
        raise web.HTTPConflict(text="a replay is running: wait for it to finish")
    expected = str(form.get("expected", ""))
    copies = sum((await _dry(request, window)).published.values())
    if expected != str(copies):
        now = _many(copies, "copy", "copies")
        raise web.HTTPConflict(text=f"the window now counts {now}, not the "
                               f"{expected[:12]!r} confirmed: confirm again")
    if replays.running:  # another act started while this one counted
        raise web.HTTPConflict(text="a replay is running: wait for it to finish")
    who = actor(request)
    who.log("archive_replay", ARCHIVE, copies, confirmed_expected=copies, **_detail(window))
    settings = request.app[SETTINGS]
    replays.plan = plan = _plan(settings, window, f"console@{request.remote}", False)
    replays.summary, replays.error = replay.Summary(), ""
    replays.task = asyncio.create_task(_run(settings, plan, replays, who))
    raise web.HTTPSeeOther("/archive")


async def _run(settings: Settings, plan: replay.Plan, replays: Replays, who: Actor) -> None:
    """Run ``plan`` into ``replays.summary``; its end, whatever it is, in a
    ``console.action`` line with the copies sent so far."""
    try:
        await archive.run_replay(settings, plan, replays.summary)
    except Exception as exc:  # shown on the page and logged; the summary says what was sent
        replays.error = type(exc).__name__
    except asyncio.CancelledError:
        replays.error = "stopped"
        raise
    finally:
        who.log("archive_replayed", ARCHIVE, sum(replays.summary.published.values()),
                error=replays.error or None, **_detail(plan.window))


def _many(count: int, one: str, more: str) -> str:
    return f"{count} {one if count == 1 else more}"


def _span(window: replay.Window) -> str:
    """The window as HTML, to the second: "2026-12-03 07:00:00Z to 2026-12-03 08:00:00Z"."""
    return f"{esc(when(window.since))} to {esc(when(window.until))}"


def _detail(window: replay.Window) -> dict[str, str | None]:
    """A window as an audit line's fields."""
    return {"since": window.since.isoformat(), "until": window.until.isoformat(),
            "tenant": window.tenant, "event_type": window.event_type}
