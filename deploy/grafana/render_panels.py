"""Draw the dashboard's panels from a Prometheus, without Grafana: same queries, same layout.

Used for the pictures in docs/operations.md (deploy/grafana/screenshots/). Needs matplotlib
(not a dependency of the project: `pip install matplotlib`). Each page holds the dashboard rows
named on the command line (0-based), e.g. pages of rows 0-1 and 2-3:

    python deploy/grafana/render_panels.py --prometheus http://127.0.0.1:9090 \\
        --minutes 15 --rows 0,1 --out page-1.png
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, PercentFormatter

DASHBOARD = Path(__file__).resolve().parent / "dashboards" / "zenoti-events.json"
VARIABLES = {"$__rate_interval": "1m", "$budget": "60", "$namespace": "zenoti-events-compose",
             "$job": ".+"}


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as r:
        body = json.load(r)
    return body["data"]["result"]  # type: ignore[no-any-return]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def rows_of(board: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rows: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            rows.append((panel, []))
        else:
            rows[-1][1].append(panel)
    return rows


def fetch(panel: dict[str, Any], prometheus: str, start: float, end: float) -> list[Any]:
    """(legend, minutes before the end, values) of every series the panel's queries return."""
    step = max(5.0, (end - start) / 240)
    series = []
    for target in panel["targets"]:
        for result in query_range(prometheus, target["expr"], start, end, step):
            xs = [(float(t) - end) / 60 for t, _ in result["values"]]
            ys = [float(v) for _, v in result["values"]]
            series.append((legend(target.get("legendFormat", ""), result["metric"]), xs, ys))
    series = [s for s in series if any(y == y for y in s[2])]  # NaN-only series out
    busy = [s for s in series if any(y == y and y != 0 for y in s[2])]
    return busy or series  # all-zero series only when nothing else has data


def plot(ax: Any, series: list[Any], stacked: bool) -> None:
    if stacked and series:
        grid = sorted({x for _, xs, _ in series for x in xs})
        values = [[dict(zip(xs, ys, strict=True)).get(x, 0.0) for x in grid]
                  for _, xs, ys in series]
        ax.stackplot(grid, values, labels=[n for n, _, _ in series], alpha=0.8)
    else:
        for name, xs, ys in series:
            ax.plot(xs, ys, label=name, linewidth=1.2)


def style(ax: Any, panel: dict[str, Any], series: list[Any]) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    for step in defaults.get("thresholds", {}).get("steps", [])[1:]:
        ax.axhline(step["value"], color=step["color"], linestyle="--", linewidth=0.8)
    unit = defaults.get("unit")
    if unit == "percentunit":
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif unit == "s":
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} s"))
    if "max" in defaults:
        ax.set_ylim(0, defaults["max"] * 1.05)
    ax.set_title(panel["title"], fontsize=9, loc="left")
    ax.tick_params(labelsize=7)
    ax.set_xlabel("minutes", fontsize=7)
    ax.grid(alpha=0.3)
    if not series:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if len(series) > 4 else 1)


def draw(ax: Any, panel: dict[str, Any], prometheus: str, start: float, end: float) -> None:
    series = fetch(panel, prometheus, start, end)
    stacked = panel["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    plot(ax, series, stacked)
    style(ax, panel, series)


def render(prometheus: str, minutes: float, rows: list[int], out: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    chosen = [rows_of(board)[i] for i in rows]
    end = time.time()
    start = end - minutes * 60
    top = min(p["gridPos"]["y"] for row, _ in chosen for p in [row])
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for _, panels in chosen for p in panels)
    height = bottom - top
    fig = plt.figure(figsize=(16, height * 0.42))
    for row, panels in chosen:
        y = (row["gridPos"]["y"] - top) / height
        fig.text(0.01, 1 - y - 0.6 / height, row["title"], fontsize=12, weight="bold")
        for panel in panels:
            g = panel["gridPos"]
            left, width = g["x"] / 24 + 0.035, g["w"] / 24 - 0.05
            up = 1 - (g["y"] - top) / height
            ax = fig.add_axes((left, up - g["h"] / height + 0.9 / height, width,
                               g["h"] / height - 1.6 / height))
            draw(ax, panel, prometheus, start, end)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090")
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--rows", default="0,1", help="dashboard rows, 0-based, comma-separated")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    render(args.prometheus, args.minutes, [int(r) for r in args.rows.split(",")], args.out)


if __name__ == "__main__":
    main()
