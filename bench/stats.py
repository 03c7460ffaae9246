"""Medians over runs, their spread, and ratios to the baselines: how every figure is reported.

A scenario's result is a ``Measured``: per variant (``ours``, a baseline, or a condition of
one such as ``ours @ 1000/s``), a list of runs, each a flat dict of metric -> value. Spread is
``(max - min) / median``; a ratio divides our median by the baseline's, both from this run.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Metric:
    """A column: its key in a run, how it is printed, and which way is better."""

    key: str
    label: str
    fmt: str = "{:.0f}"
    higher_is_better: bool = True
    show_spread: bool = True  # off for figures whose relative spread means nothing (noise)


@dataclass(frozen=True, slots=True)
class Ratio:
    """``ours`` over ``baseline`` on ``metric`` (both variants' medians)."""

    ours: str
    baseline: str
    metric: str


@dataclass
class Measured:
    """Everything one scenario reports."""

    scenario: str
    title: str
    metrics: Sequence[Metric]
    runs: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    ratios: Sequence[Ratio] = ()
    goals: list[dict[str, Any]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, variant: str, run: dict[str, float]) -> None:
        self.runs.setdefault(variant, []).append(run)

    def median(self, variant: str, key: str) -> float:
        values = [r[key] for r in self.runs.get(variant, []) if key in r]
        return statistics.median(values) if values else float("nan")

    def ratio(self, ratio: Ratio) -> float:
        base = self.median(ratio.baseline, ratio.metric)
        return self.median(ratio.ours, ratio.metric) / base if base else float("nan")

    def goal(self, text: str, value: float, met: bool, shown: str = "{:.2f}") -> None:
        self.goals.append({"goal": text, "value": value, "shown": shown.format(value),
                           "met": bool(met)})

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per variant and metric: median, min, max, spread and the number of runs."""
        return {variant: {m.key: spread([r[m.key] for r in runs if m.key in r])
                          for m in self.metrics}
                for variant, runs in self.runs.items()}

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "title": self.title, "summary": self.summary(),
            "ratios": [{"ours": r.ours, "baseline": r.baseline, "metric": r.metric,
                        "value": self.ratio(r)} for r in self.ratios],
            "goals": self.goals, "notes": self.notes, "runs": self.runs,
        }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max, relative spread and count of ``values`` (NaN when empty)."""
    if not values:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "spread": nan, "n": 0}
    middle = statistics.median(values)
    relative = (max(values) - min(values)) / middle if middle else 0.0
    return {"median": middle, "min": min(values), "max": max(values), "spread": relative,
            "n": len(values)}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
