"""A message's fate, decided by the type of what the handler raised, in this one place.

=====================================  =============  ==========================================
raised                                 fate           why
=====================================  =============  ==========================================
nothing                                ``ACK``        handled; the output was confirmed
``PermanentError`` (``InvalidPayload``,  ``DEAD_LETTER``  retrying cannot help; parked with reason
``ResourceNotFound``)
``TransientError`` (``RateLimited``,   ``RETRY``      may succeed later
``ZenotiUnavailable``)
anything else (a bug, a broker error)  ``RETRY``      never lose a message to an unexpected error
=====================================  =============  ==========================================

``RETRY`` currently republishes to the tail of the handler's queue; the delayed, tiered retry of
a later issue changes only ``Dispatcher._retry``, not this table.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from processor.errors import HandlingError, PermanentError, RateLimited, TransientError

_DETAIL_LIMIT = 1000


class Outcome(enum.Enum):
    ACK = "ok"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Fate:
    """What to do with a message, and why (``reason`` is a stable slug, ``detail`` free text)."""

    outcome: Outcome
    reason: str = ""
    detail: str = ""
    retry_after: float | None = None


ACK = Fate(Outcome.ACK)


def decide(exc: BaseException | None) -> Fate:
    """The fate of a message whose handling raised ``exc`` (``None``: it succeeded)."""
    if exc is None:
        return ACK
    detail = f"{type(exc).__name__}: {exc}"[:_DETAIL_LIMIT]
    if isinstance(exc, PermanentError):
        return Fate(Outcome.DEAD_LETTER, exc.reason, detail)
    if isinstance(exc, RateLimited):
        return Fate(Outcome.RETRY, exc.reason, detail, exc.retry_after)
    if isinstance(exc, TransientError | HandlingError):
        return Fate(Outcome.RETRY, exc.reason, detail)
    return Fate(Outcome.RETRY, "unexpected_error", detail)
