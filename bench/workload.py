"""The one workload of every scenario: signed ``Guest.Membership.Freeze`` deliveries of 1.5 KB.

The bodies come from the simulator's generator (``processor.dev.deliveries``), so they are what the
project's own tools send; each gets a unique ``event_id`` (the ingress answers a repeated one
200 without publishing, which would flatter it) and is padded to ``BODY_BYTES`` with a ``notes``
field inside ``data`` (kept by the schema's ``extra="allow"``, so it is parsed like any field).
One event type means one work queue, ``zenoti.h.membership-freeze``, in every scenario.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processor.dev.deliveries import FREEZE, build_deliveries
from processor.dev.sandbox.organisation import Organisation
from processor.ingress.signature import sign

SECRET = "bench-webhook-secret"
BODY_BYTES = 1500
WORK_QUEUE = "zenoti.h.membership-freeze"
ROUTING_KEY = "guest.membership.freeze"
_TEMPLATES = 64


@dataclass(frozen=True, slots=True)
class SignedDelivery:
    """One request: the exact body and its ``zenoti-webhook-signature`` value."""

    event_id: str
    body: bytes
    signature: str


def deliveries(count: int, seed: int = 7, prefix: str = "b") -> Iterator[SignedDelivery]:
    """``count`` distinct signed deliveries; ``prefix`` keeps the ids of two sets apart."""
    templates = _templates(seed)
    for index in range(count):
        envelope = dict(templates[index % len(templates)])
        event_id = f"{prefix}{index:023x}"
        envelope["event_id"], envelope["id"] = event_id, event_id[:-1] + "f"
        body = json.dumps(envelope, separators=(",", ":")).encode()
        yield SignedDelivery(event_id, body, sign(SECRET, body))


def _templates(seed: int) -> list[dict[str, Any]]:
    org = Organisation.generate(seed, guests=300, centers=3)
    built = build_deliveries(org, _TEMPLATES * 4, seed, unknown_ratio=0.0)
    envelopes = [json.loads(d.body) for d in built if d.event_type == FREEZE][:_TEMPLATES]
    for envelope in envelopes:
        size = len(json.dumps(envelope, separators=(",", ":")))
        envelope["data"]["notes"] = _filler(BODY_BYTES - size - len(',"notes":""'))
    return envelopes


def _filler(length: int) -> str:
    words = "guest asked to pause the membership while travelling; fee waived by manager. "
    return (words * (length // len(words) + 1))[: max(length, 0)]


def write_wrk_files(directory: Path, count: int, threads: int, prefix: str = "b") -> list[Path]:
    """One file per wrk thread, a line ``<signature>\\t<body>`` per request, ids disjoint."""
    paths = [directory / f"requests-{n}.txt" for n in range(threads)]
    handles = [path.open("w") for path in paths]
    try:
        for index, delivery in enumerate(deliveries(count, prefix=prefix)):
            handles[index % threads].write(f"{delivery.signature}\t{delivery.body.decode()}\n")
    finally:
        for handle in handles:
            handle.close()
    return paths
