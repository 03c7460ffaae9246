"""structlog set-up: JSON lines in production, console rendering on a TTY.

Called once from ``main``. Per-message fields (event id, type, tenant, handler) are bound by
the worker with ``MessageFields``, one context variable set once per message, so every line
logged while handling carries them (structlog's ``bound_contextvars`` sets one variable per
field: 6 us a message, 8 % of the worker's own time).

Libraries that log through the standard library (aiohttp, asyncio, aio-pika, aiormq) are
rendered by the same processors, so every line of a process is one JSON object: a traceback
lives inside its line (``exception``), never across lines. A client that drops its connection
mid-request is not our fault and not news: ``aiohttp.server`` reports it at info level as one
line with the exception's repr, without a traceback.

``Throttle`` keeps a recurring cause (Redis down, say) to one line per interval.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["THROTTLE", "MessageFields", "Throttle", "configure", "get_logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def configure(log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog and the standard library's root logger for the whole process."""
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        merge_message_fields,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = _LEVELS.get(level.lower(), logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_standard_library(shared, renderer, numeric)


def get_logger(**bound: object) -> FilteringBoundLogger:
    """A logger with ``bound`` fields on every line."""
    logger: FilteringBoundLogger = structlog.get_logger().bind(**bound)
    return logger


_MESSAGE: ContextVar[dict[str, Any] | None] = ContextVar("zenoti_events_message", default=None)


class MessageFields:
    """``with MessageFields(event_id=..., tenant=...):`` every line logged inside, by any
    logger of the process, carries these fields (a line's own fields win)."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: Any) -> None:
        self._fields = fields
        self._token: Token[dict[str, Any] | None] | None = None

    def __enter__(self) -> None:
        self._token = _MESSAGE.set(self._fields)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._token is not None:
            _MESSAGE.reset(self._token)


def merge_message_fields(_: Any, __: str, event: structlog.typing.EventDict
                         ) -> structlog.typing.EventDict:
    """The structlog processor that adds the current ``MessageFields``."""
    fields = _MESSAGE.get()
    if fields:
        for name, value in fields.items():
            event.setdefault(name, value)
    return event


def _route_standard_library(shared: list[structlog.typing.Processor],
                            renderer: structlog.typing.Processor, level: int) -> None:
    handler = _StructlogHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    handler.addFilter(_brief_disconnects)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StructlogHandler)]:
        root.removeHandler(old)  # configured again (tests): one handler, never two
    root.addHandler(handler)
    root.setLevel(level)
    # One line per request would drown everything else; our servers turn it off anyway.
    logging.getLogger("aiohttp.access").setLevel(max(level, logging.WARNING))


class _StructlogHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass




def _brief_disconnects(record: logging.LogRecord) -> bool:
    """Reduce ``aiohttp.server``'s traceback for a dropped connection to an info line."""
    if not record.name.startswith("aiohttp.server") or not record.exc_info:
        return True
    error = record.exc_info[1]
    if _is_disconnect(error):
        record.msg, record.args = f"{record.getMessage()}: {error!r}", None
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
    return True


def _is_disconnect(error: BaseException | None) -> bool:
    # aiohttp raises ConnectionResetError("Connection lost") into the reading handler; an
    # explicit ``raise ... from`` of it (our own wrapping) is the same event.
    return isinstance(error, ConnectionError) or (
        error is not None and isinstance(error.__cause__, ConnectionError))


@dataclass(slots=True)
class _Cause:
    since: float  # the first occurrence of this episode
    logged: float  # the last line written
    suppressed: int  # occurrences since that line
    total: int


class Throttle:
    """One line per cause, however often it recurs: the first occurrence is logged at once,
    then at most one line per ``interval`` seconds, carrying how many were suppressed
    (``suppressed``) and for how long the cause has lasted (``for_seconds``). ``recovered``
    ends the episode with one info line, so an operator sees both edges of an outage.

    A cause is a stable event name (``dedupe.unavailable``); the fields of the line that is
    written are those of the occurrence that wrote it. Not thread-safe: one event loop.
    """

    def __init__(self, interval: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._causes: dict[str, _Cause] = {}

    def warning(self, log: FilteringBoundLogger, cause: str, **fields: Any) -> None:
        """Log ``cause`` as a warning unless it was logged less than ``interval`` ago."""
        now = self._clock()
        state = self._causes.get(cause)
        if state is None:
            self._causes[cause] = _Cause(since=now, logged=now, suppressed=0, total=1)
            log.warning(cause, **fields)
            return
        state.total += 1
        if now - state.logged < self._interval:
            state.suppressed += 1
            return
        log.warning(cause, suppressed=state.suppressed,
                    for_seconds=round(now - state.since, 1), **fields)
        state.logged, state.suppressed = now, 0

    def recovered(self, log: FilteringBoundLogger, cause: str, event: str,
                  **fields: Any) -> None:
        """End ``cause``'s episode, logging ``event`` once if it was active; cheap if not."""
        state = self._causes.pop(cause, None)
        if state is not None:
            log.info(event, cause=cause, occurrences=state.total,
                     for_seconds=round(self._clock() - state.since, 1), **fields)


# The process's throttle, shared by every component that has no reason to keep its own: one
# Redis outage is one cause however many tenants' budgets notice it.
THROTTLE = Throttle()
