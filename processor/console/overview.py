"""The overview (``/``): per handler, its queue, consumers, in flight, parked by reason and
enriched a minute; per configured tenant, the API budget and the snapshots' freshness; the
ingress's spool; and which ``/metrics`` answered. Each source is gathered concurrently and
bounded; one that fails or is not configured says so on the page, never a 500. A load holds
one of the console's read slots (``guard.reading``: 503 busy when none frees in time), so
reloads cannot open connections without bound."""

from __future__ import annotations

import asyncio
import math
import time

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from processor.broker.topology import UNROUTED, dead_queue_name, queue_name
from processor.console import figures, guard
from processor.console.common import SETTINGS, html
from processor.console.pages import esc, table
from processor.console.scrape import Scrape, Scraper
from processor.ops import dlq
from processor.settings import Settings
from processor.worker import plugins
from processor.zenoti.snapshot_store import Meta

SCRAPER = web.AppKey("scraper", Scraper)
REASONS = web.AppKey("reasons", figures.ReasonCounts)
_REDIS_WAIT = 3.0
_SPOOL = (("zenoti_events_spool_entries", "Entries"), ("zenoti_events_spool_bytes", "Bytes"),
          ("zenoti_events_spool_limit_bytes", "Limit (bytes)"),
          ("zenoti_events_spool_oldest_age_seconds", "Oldest (s)"))


def install(app: web.Application) -> None:
    """The ``/`` route and the state it keeps (samples for the rate, counted lots)."""
    settings = app[SETTINGS]
    app[SCRAPER] = Scraper(list(settings.console_metrics_urls))
    app[REASONS] = figures.ReasonCounts(settings, guard.install(app))
    app.router.add_get("/", _overview)

    async def close(app: web.Application) -> None:
        await app[REASONS].close()

    app.on_cleanup.append(close)


async def _overview(request: web.Request) -> web.Response:
    handlers = sorted(h.name for h in plugins.discover())
    lots = [*handlers, dlq.UNROUTED_LOT]
    async with guard.reading(request):  # one of the console's read slots, like a lot's view
        queues, tenants, scrapes = await asyncio.gather(
            _queues(request, handlers), _tenants(request), request.app[SCRAPER].scrape())
        reasons = dict(zip(lots, await asyncio.gather(
            *(request.app[REASONS].of(lot) for lot in lots)), strict=True))
    body = (_handlers(handlers, queues, reasons, scrapes, request.app[SCRAPER])
            + "<h2>Tenants</h2>" + tenants + "<h2>Spool</h2>" + _spool(scrapes)
            + "<h2>Metrics sources</h2>" + _sources(scrapes))
    return html(request, "Overview", body)


async def _queues(request: web.Request,
                  handlers: list[str]) -> dict[str, figures.Queue | None] | str:
    try:
        found = await figures.queues(request.app[SETTINGS], handlers)
    except Exception as exc:  # any failure of the broker reads "unavailable"
        request.app[guard.GUARD].failed("broker", exc)
        return f"unavailable ({type(exc).__name__})"
    request.app[guard.GUARD].answered("broker")
    return found


def _handlers(handlers: list[str], queues: dict[str, figures.Queue | None] | str,
              reasons: dict[str, figures.Reasons], scrapes: list[Scrape],
              scraper: Scraper) -> str:
    """The handlers' table (id ``handlers``), the unrouted lot last."""
    down = isinstance(queues, str)
    known = {} if isinstance(queues, str) else queues

    def queue(name: str, what: str) -> str:
        if down:
            return "<span class='down'>unavailable</span>"
        found = known.get(name)
        return "missing" if found is None else esc(getattr(found, what))

    flight, rates = _in_flight(scrapes), scraper.rates()
    rows = [[esc(h), queue(queue_name(h), "messages"), queue(queue_name(h), "consumers"),
             esc(_figure(flight.get(h, 0)) if isinstance(flight, dict) else flight),
             queue(dead_queue_name(h), "messages"), _reasons(reasons[h]),
             esc(_figure(rates.get(h, 0.0), 1)) if rates is not None else _rate_note(scrapes)]
            for h in handlers]
    rows.append([esc(dlq.UNROUTED_LOT), "-", "-", "-", queue(UNROUTED, "messages"),
                 _reasons(reasons[dlq.UNROUTED_LOT]), "-"])
    said = f"<p class='down' id='broker'>Broker: {esc(queues)}</p>" if down else ""
    return said + table(["Handler", "Queue", "Consumers", "In flight", "Parked",
                         _by_reason(reasons), "Enriched/min"], rows, "handlers")


def _reasons(found: figures.Reasons) -> str:
    if found.counts is None:
        return f"<span class='note'>{esc(found.note)}</span>"
    return esc(", ".join(f"{r}: {n}" for r, n in found.counts.most_common()) or "-")


def _by_reason(reasons: dict[str, figures.Reasons]) -> str:
    """The column's title with when its oldest count was made: counts are kept a while
    (``ReasonCounts``), "Parked" beside them is live."""
    ages = [time.monotonic() - r.at for r in reasons.values() if r.at]
    return f"Parked by reason (counted {_ago(max(ages))})" if ages else "Parked by reason"


def _in_flight(scrapes: list[Scrape]) -> dict[str, float] | str:
    answered = [s.sample for s in scrapes if s.sample is not None]
    if not scrapes:
        return "not configured"
    if not answered:
        return "unavailable"
    total: dict[str, float] = {}
    for sample in answered:
        for handler, value in sample.in_flight.items():
            total[handler] = total.get(handler, 0) + value
    return total


def _figure(value: float, decimals: int = 0) -> str:
    """A scraped figure as a short text: "?" unless finite, 3 significant digits from
    10**12 (a gauge may say anything)."""
    if not math.isfinite(value):
        return "?"
    return f"{value:.3g}" if abs(value) >= 1e12 else f"{value:.{decimals}f}"


def _rate_note(scrapes: list[Scrape]) -> str:
    if not scrapes:
        return "not configured"
    if all(s.sample is None for s in scrapes):
        return "<span class='down'>unavailable</span>"
    return "<span class='note'>measuring: reload in a few seconds</span>"


async def _tenants(request: web.Request) -> str:
    """The tenants' table (id ``tenants``), each tenant read concurrently and bounded."""
    settings = request.app[SETTINGS]
    client = figures.redis_client(settings)
    if client is None:
        return "<p id='tenants'>Redis: not configured (REDIS_URL)</p>"
    async with client:
        names = list(settings.all_tenants())
        rows = await asyncio.gather(*(_tenant(client, settings, name) for name in names))
    return table(["Tenant", "API calls used (window)", "Waiting for a token", "Paused",
                  "Snapshots"], rows, "tenants")


async def _tenant(client: aioredis.Redis, settings: Settings, name: str) -> list[str]:
    try:
        async with asyncio.timeout(_REDIS_WAIT):
            found = await figures.tenant(client, settings, name)
    except (RedisError, OSError, TimeoutError) as exc:
        return [esc(name), f"<span class='down'>unavailable ({esc(type(exc).__name__)})"
                "</span>", "-", "-", "-"]
    b = found.budget
    return [esc(name), esc(f"{b.used} of {b.burst}"), esc(b.waiting),
            esc(f"{b.blocked_for:.0f} s" if b.blocked_for else "-"),
            esc("; ".join(_snapshots(k, m) for k, m in found.snapshots.items()) or "-")]


def _snapshots(kind: str, metas: list[Meta]) -> str:
    if not metas:
        return f"{kind}: none"
    ages = sorted(time.time() - m.as_of for m in metas)
    loading = sum(1 for m in metas if not m.complete)
    return (f"{kind}: {len(metas)} center(s), newest {_ago(ages[0])}, oldest {_ago(ages[-1])}"
            + (f", {loading} loading" if loading else ""))


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def _spool(scrapes: list[Scrape]) -> str:
    """The ingresses' spools (id ``spool``), each by its redacted URL: only the sources with a
    spool (all its gauges, a limit over 0; a worker's /metrics shows them at 0)."""
    if not scrapes:
        return "<p id='spool'>Metrics: not configured (CONSOLE_METRICS_URLS)</p>"
    rows = [[esc(s.url), *(esc(_figure(s.sample.spool[n])) for n, _ in _SPOOL)]
            for s in scrapes if s.sample is not None and _has_spool(s.sample.spool)]
    if not rows:
        return ("<p id='spool'>No spool among the metrics sources that answered (an "
                "ingress with a spool shows a limit over 0).</p>")
    return table(["Ingress", *(title for _, title in _SPOOL)], rows, "spool")


def _has_spool(spool: dict[str, float]) -> bool:
    return all(n in spool for n, _ in _SPOOL) and spool[_SPOOL[2][0]] > 0


def _sources(scrapes: list[Scrape]) -> str:
    """Each metrics source (id ``sources``) by its redacted URL, and whether it answered."""
    rows = [[esc(s.url), "ok" if s.sample is not None
             else f"<span class='down'>unavailable ({esc(s.error)})</span>"] for s in scrapes]
    return table(["URL", "Status"], rows, "sources") if rows else "<p>None configured.</p>"
