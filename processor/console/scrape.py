"""The ingress's and workers' ``/metrics`` as the overview reads them (``CONSOLE_METRICS_URLS``).

Each scrape is bounded (``timeout`` seconds, ``MAX_BYTES``); a URL that does not answer,
answers other than 200 or is not Prometheus text is *unavailable*, with the reason, never an
error of the page.
Enriched per minute is a rate between two scrapes of one URL that the console keeps: the
oldest kept sample at least ``min_gap`` seconds old and at most ``keep`` seconds old (none on
the first look); a counter that went down (a restarted process) counts from zero. Samples
are kept at least ``min_gap`` apart (a newer one replaces the newest while it is closer) and
at most ``MAX_SAMPLES`` a URL, so reloading the page does not grow them; a URL silent for
longer than ``keep`` is forgotten.

A URL whose host resolves to several addresses (a Kubernetes headless Service: one per ready
pod) is scraped at each of them, at most ``FAN_OUT``, resolved again at every scrape (within
the same timeout), with its own ``Host`` header (and TLS server name) kept; each address is a
source of its own, shown as ``url (address)``, with its own samples and rate. One address
family is used: IPv4 when the name has any, else IPv6 (a dual-stack name would count each pod
twice). An IP literal or a name of one address is scraped as it is.

A URL is shown and logged ``redact``ed: its userinfo, query and fragment may carry a
credential, so only ``scheme://host:port/path`` ever leaves the process's memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from yarl import URL

MAX_BYTES = 4 * 1024 * 1024  # of one /metrics answer (ours are a few tens of KiB)
MAX_SAMPLES = 64  # kept per URL
FAN_OUT = 32  # addresses scraped per URL
_OK = "zenoti_events_messages_total"
_IN_FLIGHT = "zenoti_events_in_flight"
_SPOOL = ("zenoti_events_spool_entries", "zenoti_events_spool_bytes",
          "zenoti_events_spool_limit_bytes", "zenoti_events_spool_oldest_age_seconds")


@dataclass(frozen=True, slots=True)
class Sample:
    """What one ``/metrics`` said: per handler, messages handled ``ok`` (a counter) and in
    flight; the spool's gauges by metric name (present only on an ingress)."""

    ok: dict[str, float] = field(default_factory=dict)
    in_flight: dict[str, float] = field(default_factory=dict)
    spool: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scrape:
    """One URL's answer (``url`` redacted): its ``sample``, else why it is unavailable
    (``error``)."""

    url: str
    sample: Sample | None
    error: str = ""


def redact(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: no userinfo, query or fragment."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "(unreadable URL)"
    where = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{where}{f':{port}' if port is not None else ''}{parts.path}"


@dataclass(frozen=True, slots=True)
class Target:
    """One GET of a scrape: ``url`` (a configured one, or it at one of its host's addresses),
    kept under ``key``, shown as ``shown``, with the configured host as ``Host``."""

    key: str
    url: str
    shown: str
    host: str | None = None  # the Host header when ``url`` is an address
    name: str | None = None  # the configured host name, for TLS when ``url`` is an address

    def options(self) -> dict[str, Any]:
        """The GET's keyword arguments for the configured name (none for a URL as given)."""
        if self.host is None:
            return {}
        tls = {"server_hostname": self.name} if self.url.startswith("https:") else {}
        return {"headers": {"Host": self.host}, **tls}


async def targets(url: str, wait: float) -> list[Target]:
    """``url`` as its targets: one per address of its host, else itself (module docstring);
    ``OSError``/``TimeoutError``/``ValueError`` when the name does not resolve in ``wait``."""
    parsed = URL(url)
    if not parsed.host or parsed.scheme not in ("http", "https"):
        raise ValueError("not an http(s) URL")
    try:
        ipaddress.ip_address(parsed.host)
        return [Target(url, url, redact(url))]
    except ValueError:
        pass
    async with asyncio.timeout(wait):
        infos = await asyncio.get_running_loop().getaddrinfo(
            parsed.host, parsed.port, type=socket.SOCK_STREAM)
    v4 = sorted({str(i[4][0]) for i in infos if i[0] == socket.AF_INET})
    found = v4 or sorted({str(i[4][0]) for i in infos if i[0] == socket.AF_INET6})
    if len(found) <= 1:
        return [Target(url, url, redact(url))]
    host = parsed.host + (f":{parsed.explicit_port}" if parsed.explicit_port else "")
    return [Target(f"{url}@{at}", str(parsed.with_host(at)), f"{redact(url)} ({at})", host,
                   parsed.host) for at in found[:FAN_OUT]]


def parse(text: str) -> Sample:
    """The figures the overview shows, from Prometheus text; ``ValueError`` if it is not."""
    found = Sample()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            handler = s.labels.get("handler")
            if s.name == _OK and handler and s.labels.get("outcome") == "ok":
                found.ok[handler] = found.ok.get(handler, 0.0) + s.value
            elif s.name == _IN_FLIGHT and handler:
                found.in_flight[handler] = found.in_flight.get(handler, 0.0) + s.value
            elif s.name in _SPOOL:
                found.spool[s.name] = s.value
    return found


def per_minute(older: Sample, newer: Sample, seconds: float) -> dict[str, float]:
    """Handlers' ``ok`` messages a minute between two samples ``seconds`` apart."""
    if seconds <= 0:
        return {}
    return {handler: 60.0 * (total - older.ok.get(handler, 0.0)
                             if total >= older.ok.get(handler, 0.0) else total) / seconds
            for handler, total in newer.ok.items()}


class Scraper:
    """Scrapes the URLs and keeps each one's recent samples for the rate."""

    def __init__(self, urls: list[str], *, timeout: float = 2.0, min_gap: float = 5.0,
                 keep: float = 300.0) -> None:
        self.urls = urls
        self._timeout = timeout
        self._min_gap, self._keep = min_gap, keep
        self._history: dict[str, deque[tuple[float, Sample]]] = defaultdict(
            lambda: deque(maxlen=MAX_SAMPLES))

    async def scrape(self) -> list[Scrape]:
        """Every URL (each of its addresses), concurrently, each within the timeout."""
        bound = aiohttp.ClientTimeout(total=self._timeout)
        async with aiohttp.ClientSession(timeout=bound) as http:
            found = await asyncio.gather(*(self._url(http, url) for url in self.urls))
        return [scrape for scrapes in found for scrape in scrapes]

    async def _url(self, http: aiohttp.ClientSession, url: str) -> list[Scrape]:
        try:
            each = await targets(url, self._timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            return [Scrape(redact(url), None, type(exc).__name__)]
        return list(await asyncio.gather(*(self._one(http, target) for target in each)))

    async def _one(self, http: aiohttp.ClientSession, target: Target) -> Scrape:
        try:
            async with http.get(target.url, allow_redirects=False,
                                **target.options()) as answer:
                if answer.status != 200:
                    return Scrape(target.shown, None, f"HTTP {answer.status}")
                raw = await _body(answer)
            if len(raw) > MAX_BYTES:
                return Scrape(target.shown, None, f"over {MAX_BYTES} bytes")
            sample = parse(raw.decode("utf-8", "replace"))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return Scrape(target.shown, None, type(exc).__name__)
        self.record(target.key, time.monotonic(), sample)
        return Scrape(target.shown, sample)

    def record(self, url: str, now: float, sample: Sample) -> None:
        """Keep ``url``'s ``sample`` taken at ``now`` (``time.monotonic``), within the
        bounds the module states."""
        for silent in [u for u, k in self._history.items() if k and now - k[-1][0] > self._keep]:
            del self._history[silent]
        kept = self._history[url]
        while kept and now - kept[0][0] > self._keep:
            kept.popleft()
        if len(kept) >= 2 and kept[-1][0] - kept[-2][0] < self._min_gap:
            kept[-1] = (now, sample)
        else:
            kept.append((now, sample))

    def rates(self) -> dict[str, float] | None:
        """Enriched a minute per handler over every URL; ``None`` until a URL has two
        samples ``min_gap`` apart (a URL silent for longer than ``keep`` no longer counts)."""
        total: dict[str, float] = defaultdict(float)
        measured, now = False, time.monotonic()
        for kept in self._history.values():
            newest_at, newest = kept[-1]
            if now - newest_at > self._keep:
                continue
            older = [(at, s) for at, s in kept if newest_at - at >= self._min_gap]
            if older:
                measured = True
                for handler, rate in per_minute(older[0][1], newest,
                                                newest_at - older[0][0]).items():
                    total[handler] += rate
        return dict(total) if measured else None


async def _body(answer: aiohttp.ClientResponse) -> bytes:
    """The whole body, or its first ``MAX_BYTES + 1`` bytes when longer (``read(n)`` alone
    returns what is buffered so far: a body in several segments would be parsed in part)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_chunked(64 * 1024):
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BYTES:
            break
    return b"".join(parts)[:MAX_BYTES + 1]
