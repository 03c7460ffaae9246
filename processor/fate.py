"""A message's fate, decided by the type of what the handler raised, in this one place.

=======================================  ===============  =====================================
raised                                   fate             why
=======================================  ===============  =====================================
nothing                                  ``ACK``          handled; the output was confirmed
``PermanentError`` (``InvalidPayload``,  ``DEAD_LETTER``  retrying cannot help; parked with
``ResourceNotFound``, ``PublishRefused``)                 its reason
``RateLimited`` (Zenoti's 429)           ``RETRY``        ``throttled``: counts towards the
                                                          age limit, not the attempts
``BudgetExhausted`` (our own budget)     ``RETRY``        ``waiting`` too: spread over the
                                                          backlog, counted as deferred, not
                                                          logged per message
``TransientError`` (``ZenotiUnavailable``,  ``RETRY``     may succeed later; an exception
``UnexpectedResponse``, ``HandlerTimeout``)               class's ``parks_as`` names the reason
                                                          it is parked with once retries end
anything else (a bug, a broker error)    ``RETRY``        never lose a message to a surprise
=======================================  ===============  =====================================

Everything else (``processor.worker.dispatch``, ``processor.worker.retry``) reads the
``Fate``'s fields, never its ``reason``: that slug is for people and metrics.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from processor.errors import (
    BudgetExhausted,
    HandlingError,
    PermanentError,
    RateLimited,
    TransientError,
)

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
    throttled: bool = False  # Zenoti or our budget said wait: not the message's fault
    waiting: bool = False  # our own budget said wait: the message waits its turn
    parks_as: str | None = None  # the reason to park with when retries run out


ACK = Fate(Outcome.ACK)


def decide(exc: BaseException | None) -> Fate:
    """The fate of a message whose handling raised ``exc`` (``None``: it succeeded)."""
    if exc is None:
        return ACK
    detail = f"{type(exc).__name__}: {exc}"[:_DETAIL_LIMIT]
    if isinstance(exc, PermanentError):
        return Fate(Outcome.DEAD_LETTER, exc.reason, detail)
    if isinstance(exc, RateLimited):
        return Fate(Outcome.RETRY, exc.reason, detail, exc.retry_after, throttled=True,
                    waiting=isinstance(exc, BudgetExhausted))
    if isinstance(exc, TransientError | HandlingError):
        return Fate(Outcome.RETRY, exc.reason, detail, parks_as=exc.parks_as)
    return Fate(Outcome.RETRY, "unexpected_error", detail)
