"""Scenario 6, spool: what answering from the ingress's durable spool costs, and its drain.

``direct`` is our ingress (``bench.apps.ours_ingress``) with a spool directory and the broker
up: every delivery is published and confirmed, the spool stays empty. ``spooling`` is the same
ingress pointed at a vhost of the local broker that refuses it (``bench.refusing``; the broker
is never stopped nor alarmed): it never connects, stays ready, and answers every delivery 202
once it is on disk (segment log, group-committed fdatasync). Each run gets a fresh spool
directory in the system's temporary directory. Workload and loads are scenario 1's
(``bench.scenarios.ingress``): full (wrk, 64 connections, closed loop) and 1,000/s offered
(``bench.paced``, open loop); rounds alternate the variants. Both variants run with
``RECONNECT_MAX_DELAY`` 1 s (only reconnections use it) and no drain at stop.

Checked, or the run fails: a direct run is loaded only once its ingress holds a broker channel;
a spooling run only while it is ready with none, and it must end ready, with as many spool
writes as 202s (counted by the ingress) and nothing published directly. Over the measured
window: bytes on disk per delivery, and fdatasync batches per second (the count of
``zenoti_events_spool_sync_seconds``). After each spooling run the user is let into the vhost:
the ingress reconnects and its forwarder drains the N deliveries just spooled (warm-up
included). Forwarded/s counts from the first forward seen until ``zenoti_events_spool_entries``
is 0, so the reconnection (``reconnect_s``: a second or two) is not in it.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench import broker, paced, procs, refusing, wrk
from bench.machine import CpuMeter, broker_pid
from bench.runner import Options, Run, attempt
from bench.scenarios.ingress import CLIENTS, FIXED_RATE, PATH, Load, prepare
from bench.scrape import Scrape, scrape
from bench.stats import Measured, Metric, Ratio, percentile
from processor.dev.launcher import fetch

METRICS = (
    Metric("deliveries_per_s", "deliveries/s"),
    Metric("p50_ms", "p50 ms", "{:.1f}", higher_is_better=False),
    Metric("p99_ms", "p99 ms", "{:.1f}", higher_is_better=False),
    Metric("cpu_ms", "cpu ms/delivery", "{:.3f}", higher_is_better=False),
    Metric("bytes_per_delivery", "spool B/delivery", "{:.0f}", higher_is_better=False),
    Metric("syncs_per_s", "fdatasync/s", "{:.0f}", show_spread=False),
    Metric("forwarded_per_s", "forwarded/s"),
    Metric("other_cores", "other cores", "{:.2f}", False, show_spread=False),
)
FULL, FIXED = f"@ {CLIENTS} clients", f"@ {FIXED_RATE:.0f}/s"
DELIVERIES = "zenoti_events_deliveries_total"
CONNECTED_WITHIN_S = 15.0
FORWARD_LIMIT_S = 180.0
POLL_S = 0.05
_SYNC_BUCKETS = "zenoti_events_spool_sync_seconds_bucket"
# A measured load: (port) -> its figures and the 2xx answers the client counted.
Drive = Callable[[int], tuple[Run, int]]


@dataclass(frozen=True)
class Variant:
    """Our ingress with a spool, against the bench vhost or the refusing one."""

    name: str
    spooling: bool

    def start(self, port: int, spool: Path, options: Options) -> procs.Process:
        refused = {"ZENOTI_EVENTS_AMQP_URL": refusing.URL} if self.spooling else {}
        env = procs.ours_env(ZENOTI_EVENTS_INGRESS_PORT=str(port),
                             ZENOTI_EVENTS_INGRESS_DRAIN_SECONDS="0",
                             ZENOTI_EVENTS_SPOOL_DIR=str(spool),
                             ZENOTI_EVENTS_SPOOL_DRAIN_SECONDS="0",
                             ZENOTI_EVENTS_RECONNECT_MAX_DELAY="1", **refused)
        process = procs.Process("bench.apps.ours_ingress", "--loop", options.loop, env=env)
        process.wait_http(_readyz(port))
        return process


VARIANTS = (Variant("direct", False), Variant("spooling", True))


def run(options: Options) -> Measured:
    measured = Measured("spool", "Spool: signed 1.5 KB deliveries, spooled vs published",
                        METRICS, ratios=_ratios())
    refusing.create()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            load = prepare(Path(tmp), options)
            for round_no in range(1, options.runs + 1):
                print(f"spool round {round_no}/{options.runs}", flush=True)
                for load_of, label in ((_full, FULL), (_fixed, FIXED)):
                    for variant in VARIANTS:
                        name = f"{variant.name} {label}"
                        measured.add(name, attempt(name, partial(load_of, variant, load,
                                                                 options), options))
    finally:
        refusing.delete()
    _goals(measured)
    _notes(measured)
    return measured


def _ratios() -> list[Ratio]:
    return [Ratio(f"spooling {label}", f"direct {label}", metric)
            for label in (FULL, FIXED) for metric in ("deliveries_per_s", "p99_ms")]


def _goals(measured: Measured) -> None:
    share = measured.ratio(Ratio(f"spooling {FULL}", f"direct {FULL}", "deliveries_per_s"))
    measured.goal("spooling throughput at full load >= 50% of direct's", share, share >= 0.5)
    p99 = measured.median(f"spooling {FIXED}", "p99_ms")
    measured.goal("p99 at 1,000 deliveries/s while spooling < 50 ms", p99, p99 < 50,
                  "{:.1f} ms")
    rate = measured.median(f"spooling {FULL}", "forwarded_per_s")
    measured.goal("forwarding >= 1,000/s (a spool filled at the fixed rate shrinks)", rate,
                  rate >= 1000, "{:.0f}/s")


def _notes(measured: Measured) -> None:
    spooling = f"spooling {FULL}"
    measured.notes["forwarded after a full-load run (median)"] = (
        f"{measured.median(spooling, 'forwarded'):.0f}")
    measured.notes["first forward after the grant, s (median)"] = (
        f"{measured.median(spooling, 'reconnect_s'):.2f}")
    for label in (FULL, FIXED):
        variant = f"spooling {label}"
        measured.notes[f"deliveries per fdatasync {label} (median)"] = (
            f"{measured.median(variant, 'per_sync'):.1f}")
        measured.notes[f"write batch {label}, p99 / slowest, ms (bucket bounds, medians)"] = (
            f"{measured.median(variant, 'sync_p99_ms'):g} / "
            f"{measured.median(variant, 'sync_max_ms'):g}")
    direct = sum(r.get("spooled", 0.0) for v, runs in measured.runs.items()
                 if v.startswith("direct") for r in runs)
    measured.notes["deliveries the direct runs spooled (no confirm in time)"] = int(direct)
    measured.notes["spool filesystem"] = _filesystem(Path(tempfile.gettempdir()))


def _full(variant: Variant, load: Load, options: Options) -> Run:
    def warm(port: int) -> int:
        done = wrk.run(_url(port), load.script_warm, threads=2, connections=CLIENTS,
                       seconds=load.warm_s, available=load.available)
        return done.requests - done.bad_status

    def measure(port: int) -> tuple[Run, int]:
        done = wrk.run(_url(port), load.script, threads=2, connections=CLIENTS,
                       seconds=load.measure_s, available=load.available)
        if done.wrapped:
            raise RuntimeError("wrk ran out of distinct deliveries: raise the request count")
        return ({"deliveries_per_s": done.per_second, "p50_ms": done.p50_us / 1000,
                 "p99_ms": done.p99_us / 1000, "count": done.requests,
                 "errors": done.bad_status + done.socket_errors,
                 "client_cpu_s": done.cpu_seconds}, done.requests - done.bad_status)

    return _run(variant, options, warm, measure)


def _fixed(variant: Variant, load: Load, options: Options) -> Run:
    def warm(port: int) -> int:
        done = asyncio.run(paced.run("127.0.0.1", port, PATH, load.paced_warm, rate=FIXED_RATE,
                                     seconds=load.warm_s, connections=CLIENTS))
        return _answered(done.statuses)

    def measure(port: int) -> tuple[Run, int]:
        done = asyncio.run(paced.run("127.0.0.1", port, PATH, load.paced, rate=FIXED_RATE,
                                     seconds=load.measure_s, connections=CLIENTS))
        answered = _answered(done.statuses)
        return ({"deliveries_per_s": done.answered_per_second,
                 "p50_ms": percentile(done.latencies_ms, 50),
                 "p99_ms": percentile(done.latencies_ms, 99),
                 "count": len(done.latencies_ms),
                 "errors": len(done.latencies_ms) - answered,
                 "generator_lag_p99_ms": percentile(done.lags_ms, 99)}, answered)

    return _run(variant, options, warm, measure)


def _run(variant: Variant, options: Options, warm: Callable[[int], int], measure: Drive) -> Run:
    """One run of ``variant``: started on a fresh spool, checked, warmed, measured; for the
    spooling variant, the drain after it and the vhost shut again whatever happened."""
    asyncio.run(broker.reset())
    port = procs.free_port()
    with tempfile.TemporaryDirectory(prefix="spool-") as spool:
        try:
            with procs.running(variant.start(port, Path(spool), options)) as (process,):
                _check_started(variant, port)
                answered = warm(port)
                figures, answered_now = _measured(process.pid, port, measure)
                figures |= _check_finished(variant, port, answered + answered_now)
                if variant.spooling:
                    figures |= _forward(port)
        finally:
            if variant.spooling:
                asyncio.run(refusing.shut_out())
    return figures


def _measured(pid: int, port: int, measure: Drive) -> tuple[Run, int]:
    """``measure(port)`` with the ingress's CPU and its spool's metrics taken around it."""
    meter = CpuMeter([pid, broker_pid(), os.getpid()])
    before, at_start = meter.sample(), scrape(port)
    figures, answered = measure(port)
    usage, at_end = meter.between(before, meter.sample()), scrape(port)
    count = max(figures.pop("count"), 1.0)
    client = figures.pop("client_cpu_s", 0.0)
    figures |= {"cpu_ms": usage.cpu[0] * 1000 / count,
                "broker_cpu_ms": usage.cpu[1] * 1000 / count,
                "other_cores": max(usage.other_cores - client / usage.seconds, 0.0)}
    return figures | _spool_figures(at_start, at_end, usage.seconds), answered


def _spool_figures(start: Scrape, end: Scrape, seconds: float) -> Run:
    """Bytes per delivery and fdatasync batches over the window; none if nothing spooled."""
    writes = _delta(start, end, "zenoti_events_spool_writes_total")
    syncs = _delta(start, end, "zenoti_events_spool_sync_seconds_count")
    if not writes or not syncs:
        return {}
    return {"bytes_per_delivery": _delta(start, end, "zenoti_events_spool_bytes") / writes,
            "syncs_per_s": syncs / seconds, "per_sync": writes / syncs,
            "sync_p99_ms": _sync_bound_ms(start, end, 0.99 * syncs),
            "sync_max_ms": _sync_bound_ms(start, end, syncs),
            "syncs_over_25ms": syncs - _delta(start, end, _SYNC_BUCKETS, le="0.025")}


def _sync_bound_ms(start: Scrape, end: Scrape, batches: float) -> float:
    """The upper bound (ms) of the first histogram bucket holding ``batches`` of the window's
    write batches (write and fdatasync): with 99% of them, their p99; with all, their
    slowest. inf past the last bound."""
    bounds = sorted((float(labels["le"]), labels["le"])
                    for sample, labels, _ in end.samples if sample == _SYNC_BUCKETS)
    for bound, label in bounds:
        if _delta(start, end, _SYNC_BUCKETS, le=label) >= batches:
            return bound * 1000
    return math.inf


def _check_started(variant: Variant, port: int) -> None:
    """Direct: wait for the broker channel (ready means spool-ready too). Spooling: ready
    (``start`` waited for it) and no channel, so every delivery must go to the spool."""
    if variant.spooling:
        if scrape(port).total("zenoti_events_broker_connected"):
            raise RuntimeError(f"the ingress connected to {refusing.VHOST}: it lets us in")
        return
    deadline = time.monotonic() + CONNECTED_WITHIN_S
    while not scrape(port).total("zenoti_events_broker_connected"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no broker channel within {CONNECTED_WITHIN_S:g} s")
        time.sleep(POLL_S)


def _check_finished(variant: Variant, port: int, answered: int) -> Run:
    """Once the ingress's counts settle: a spooling run still ready, every 202 a spool write
    and at least the 2xx the client saw; a direct run says how many it spooled."""
    seen = _settled(port)
    writes = seen.total("zenoti_events_spool_writes_total")
    accepted = seen.total(DELIVERIES, status="202")
    if not variant.spooling:
        return {"spooled": writes}
    problems = [text for text, bad in (
        ("not ready after the run", fetch(_readyz(port)) is None),
        (f"{writes:.0f} spool writes for {accepted:.0f} 202s", writes != accepted),
        ("deliveries published directly", seen.total(DELIVERIES, outcome="accepted") > 0),
        (f"{accepted:.0f} 202s counted, the client saw {answered} 2xx", accepted < answered),
    ) if bad]
    if problems:
        raise RuntimeError("spooling run: " + "; ".join(problems))
    return {"spooled": writes}


def _forward(port: int) -> Run:
    """Let the ingress into the vhost and time its forwarder until the spool is empty."""
    spooled = scrape(port).total("zenoti_events_spool_entries")
    refusing.grant()
    granted = time.monotonic()
    first: tuple[float, float] | None = None
    while True:
        now, seen = time.monotonic(), scrape(port)
        forwarded = seen.total("zenoti_events_spool_forwards_total")
        if first is None and forwarded:
            first = (now, forwarded)
        if forwarded >= spooled and not seen.total("zenoti_events_spool_entries"):
            break
        if now - granted > FORWARD_LIMIT_S:
            raise RuntimeError(f"{forwarded:.0f} of {spooled:.0f} forwarded in "
                               f"{FORWARD_LIMIT_S:g} s")
        time.sleep(POLL_S)
    began, counted = first or (now, forwarded)
    rate = (forwarded - counted) / (now - began) if now > began else math.nan
    return {"forwarded": forwarded, "forwarded_per_s": rate, "reconnect_s": began - granted,
            "drain_s": now - granted}


def _settled(port: int) -> Scrape:
    """A scrape once the deliveries counted stop changing (requests cut off at the end of
    the load finish first)."""
    seen = scrape(port)
    for _ in range(50):
        time.sleep(0.2)
        again = scrape(port)
        if again.total(DELIVERIES) == seen.total(DELIVERIES):
            return again
        seen = again
    return seen


def _delta(start: Scrape, end: Scrape, name: str, **labels: str) -> float:
    return end.total(name, **labels) - start.total(name, **labels)


def _answered(statuses: dict[str, int]) -> int:
    return sum(count for status, count in statuses.items() if status.startswith("2"))


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from ``/proc/mounts``)."""
    target, best, kind = os.path.realpath(path), "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}{PATH}"


def _readyz(port: int) -> str:
    return f"http://127.0.0.1:{port}/readyz"
