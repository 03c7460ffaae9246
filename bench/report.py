"""Showing a ``Measured``: a table on stdout, a JSON file, and a PNG for those who would
rather look than read (medians as bars, min-max as whiskers)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.stats import Measured, Metric

RESULTS = Path(__file__).resolve().parent / "results"


def table(measured: Measured) -> str:
    """Medians with their spread per variant, then the ratios and the goals."""
    summary = measured.summary()
    width = max([len(v) for v in summary] + [8]) + 2
    head = "variant".ljust(width) + "".join(f"{m.label:>22}" for m in measured.metrics)
    lines = [f"\n== {measured.title} ==", head, "-" * len(head)]
    for variant, figures in summary.items():
        cells = "".join(f"{_cell(m, figures[m.key]):>22}" for m in measured.metrics)
        lines.append(variant.ljust(width) + cells + f"   (n={_runs(figures)})")
    lines.append("(median, with (max - min) / median of the runs in brackets)")
    for ratio in measured.ratios:
        label = next(m.label for m in measured.metrics if m.key == ratio.metric)
        lines.append(f"ratio  {ratio.ours} / {ratio.baseline}, {label}: "
                     f"{measured.ratio(ratio):.2f}x")
    for goal in measured.goals:
        mark = "met " if goal["met"] else "MISS"
        lines.append(f"goal   [{mark}] {goal['goal']}: {goal['shown']}")
    for key, value in measured.notes.items():
        lines.append(f"note   {key}: {value}")
    return "\n".join(lines)


def _cell(metric: Metric, figures: dict[str, float]) -> str:
    if figures["n"] == 0 or math.isnan(figures["median"]):
        return "-"
    spread = f" ({figures['spread']:.0%})" if figures["n"] > 1 and metric.show_spread else ""
    return metric.fmt.format(figures["median"]) + spread


def _runs(figures: dict[str, dict[str, float]] | dict[str, float]) -> int:
    counts = [f["n"] for f in figures.values() if isinstance(f, dict)]
    return int(max(counts)) if counts else 0


def write(measured: Measured, meta: dict[str, Any], directory: Path = RESULTS) -> list[Path]:
    """``<scenario>.json`` and ``<scenario>.png`` under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / f"{measured.scenario}.json"
    data.write_text(json.dumps({"meta": meta, **measured.as_json()}, indent=2) + "\n")
    picture = directory / f"{measured.scenario}.png"
    plot(measured, picture)
    return [data, picture]


def plot(measured: Measured, path: Path) -> None:
    """Up to three panels: the first metric, latency percentiles, CPU per item."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(measured)
    figure, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    summary = measured.summary()
    variants = list(summary)
    for axis, metrics in zip(axes[0], panels, strict=True):
        step = 0.8 / len(metrics)
        for offset, metric in enumerate(metrics):
            figures = [summary[v][metric.key] for v in variants]
            xs = [i + offset * step for i in range(len(variants))]
            medians = [f["median"] for f in figures]
            errors = [[f["median"] - f["min"] for f in figures],
                      [f["max"] - f["median"] for f in figures]]
            axis.bar(xs, medians, step, yerr=errors, capsize=3, label=metric.label)
        axis.set_xticks([i + 0.4 - step / 2 for i in range(len(variants))], variants,
                        rotation=20, ha="right", fontsize=8)
        axis.legend(fontsize=8)
    figure.suptitle(measured.title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _panels(measured: Measured) -> list[list[Metric]]:
    first, *rest = measured.metrics
    latency = [m for m in rest if m.key.startswith("p") and m.key.endswith("_ms")]
    cpu = [m for m in rest if "cpu" in m.key]
    return [group for group in ([first], latency, cpu) if group]


def overview(directory: Path = RESULTS, path: Path | None = None) -> Path | None:
    """One PNG of the headline figures of the scenarios found in ``directory`` (JSON files):
    throughput per variant, and the latency percentiles where a scenario has them. ``None``
    (and no file) when none of ingress, worker and e2e has results there yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [json.loads(p.read_text()) for name in ("ingress", "worker", "e2e")
             if (p := directory / f"{name}.json").exists()]
    if not found:
        return None
    figure, axes = plt.subplots(1, len(found), figsize=(4.6 * len(found), 3.8), squeeze=False)
    for axis, data in zip(axes[0], found, strict=True):
        _overview_panel(axis, data)
    figure.tight_layout()
    target = path or directory / "overview.png"
    figure.savefig(target, dpi=80)
    plt.close(figure)
    return target


def _overview_panel(axis: Any, data: dict[str, Any]) -> None:
    summary = data["summary"]
    key = next(iter(next(iter(summary.values()))))  # the scenario's first metric
    if data["scenario"] == "e2e":
        key = "p99_ms"
    variants = list(summary)
    medians = [summary[v][key]["median"] for v in variants]
    errors = [[m - summary[v][key]["min"] for v, m in zip(variants, medians, strict=True)],
              [summary[v][key]["max"] - m for v, m in zip(variants, medians, strict=True)]]
    axis.bar(range(len(variants)), medians, yerr=errors, capsize=3,
             color=["tab:blue" if v.startswith("ours") else "tab:gray" for v in variants])
    axis.set_xticks(range(len(variants)), variants, rotation=20, ha="right", fontsize=8)
    axis.set_title(f"{data['scenario']}: {key}", fontsize=9)
