"""Write deploy/k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yml.

The Prometheus Operator wants the rule groups inside a PrometheusRule; promtool and the compose
stack's Prometheus want a plain rule file. alerts.yml is the one to edit; run this afterwards
(tests/deploy/test_prometheus.py fails while the two differ):

    python deploy/prometheus/sync_rule.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "alerts.yml"
TARGET = HERE.parent / "k8s" / "base" / "prometheusrule.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/alerts.yml by deploy/prometheus/sync_rule.py: edit that
# file, then run the script. docs/operations.md says what each alert means and what to do.
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rule() -> dict[str, Any]:
    """The PrometheusRule object holding the groups of alerts.yml."""
    groups = yaml.safe_load(SOURCE.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "zenoti-events"},
        "spec": {"groups": groups},
    }


def render() -> str:
    return HEADER + yaml.dump(rule(), Dumper=_Dumper, sort_keys=False, width=100)


def main() -> int:
    TARGET.write_text(render())
    print(f"wrote {TARGET.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
