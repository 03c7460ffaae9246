"""One read of a process's Prometheus ``/metrics``, summed over the labels a caller names."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from processor.dev.launcher import fetch


@dataclass(frozen=True, slots=True)
class Scrape:
    """The samples of one read: ``(name, labels, value)``; names as exposed (``_total``,
    ``_count``, ...)."""

    samples: tuple[tuple[str, dict[str, str], float], ...]

    def total(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0.0 if none)."""
        return sum(value for sample, have, value in self.samples
                   if sample == name and all(have.get(k) == v for k, v in labels.items()))


def scrape(port: int, timeout: float = 2.0) -> Scrape:
    """``http://127.0.0.1:<port>/metrics``; ``RuntimeError`` if it does not answer 200."""
    text = fetch(f"http://127.0.0.1:{port}/metrics", timeout)
    if text is None:
        raise RuntimeError(f"no /metrics on port {port}")
    return Scrape(tuple((s.name, s.labels, s.value)
                        for family in text_string_to_metric_families(text)
                        for s in family.samples))
