"""Scenario 5, processes: one and two of our worker processes on the same queue.

Same drain as scenario 2, with the work split between processes by the broker. On a machine
of two cores shared with the broker (and the measuring), a second process can only use what
the first and the broker leave idle: the table says how much that was here.
"""

from __future__ import annotations

from functools import partial

from bench.runner import Options, attempt
from bench.scenarios.worker import WORKERS, once
from bench.stats import Measured, Metric, Ratio

METRICS = (
    Metric("events_per_s", "events/s"),
    Metric("cpu_ms", "cpu ms/event", "{:.3f}", higher_is_better=False),
    Metric("broker_cpu_ms", "broker ms/event", "{:.3f}", higher_is_better=False),
    Metric("rss_mib", "RSS MiB (largest)", "{:.0f}", higher_is_better=False),
    Metric("other_cores", "other cores", "{:.2f}", False, show_spread=False),
)


def run(options: Options) -> Measured:
    measured = Measured("processes", "Processes: 1 and 2 workers on one queue", METRICS,
                        ratios=[Ratio("2 processes", "1 process", "events_per_s")])
    count = 6000 if options.quick else 30000
    for round_no in range(1, options.runs + 1):
        print(f"processes round {round_no}/{options.runs}", flush=True)
        for n in (1, 2):
            label = "1 process" if n == 1 else f"{n} processes"
            run_n = partial(once, WORKERS[0], count, options, processes=n)
            measured.add(label, attempt(label, run_n, options))
    measured.notes["prefilled"] = count
    measured.notes["cores"] = "2, shared by the workers, RabbitMQ and the measuring process"
    return measured
