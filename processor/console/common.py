"""What every console page shares: the application's keys, the HTML answer with its nav, the
session's role, the form's fields and the ``console.action`` audit line.

Every audit line names who acted: the role, the remote address and ``session``, the first 8
hex digits of the SHA-256 of the session id (the same session's lines group together; the
id itself, a bearer credential, is never logged). A filter in a line is ``describe``d: each
value with its control characters escaped and cut to ``_CUT`` characters."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from processor import logs
from processor.console.auth import COOKIE, Session, Sessions
from processor.console.pages import page
from processor.ops.parking import Filter
from processor.settings import Settings

SESSIONS = web.AppKey("sessions", Sessions)
SETTINGS = web.AppKey("settings", Settings)
SESSION = web.RequestKey("session", Session)
_CUT = 200
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def html(request: web.Request, title: str, body: str, status: int = 200) -> web.Response:
    """``body`` (escaped by the caller) as a page; the nav logs out a logged-in session."""
    session = request.get(SESSION)
    text = page(title, body, session.csrf if session is not None else None, request.path)
    return web.Response(text=text, status=status, content_type="text/html")


def writer(request: web.Request) -> Session:
    """The request's session if it may act (replay, purge); else 403."""
    session = request[SESSION]
    if session.role != "write":
        raise web.HTTPForbidden(text="read-only session")
    return session


def field(query: Any, name: str) -> str | None:
    """A non-empty text field of a query or form, else None."""
    value = query.get(name)
    return value if isinstance(value, str) and value else None


def moment(query: Any, name: str) -> datetime | None:
    """An ISO 8601 field as an aware UTC time (naive ones read as UTC); 400 if unreadable."""
    text = field(query, name)
    try:
        value = datetime.fromisoformat(text) if text else None
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: an ISO 8601 time, please") from None
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def number(query: Any, name: str) -> int | None:
    """A field of 1 to 6 ASCII digits as a number, else None (``int`` alone takes "²",
    and thousands of digits at a quadratic cost)."""
    text = query.get(name)
    return int(text) if isinstance(text, str) and re.fullmatch("[0-9]{1,6}", text) else None


def page_number(query: Any) -> int:
    """The ``page`` field: 0 to 999,999 written in ASCII digits, else 0."""
    return number(query, "page") or 0


def describe(where: Filter) -> str:
    """``where`` as one line for a log (``dlq``'s wording), each value sanitized."""
    return where.describe(_clean)


def _clean(text: str) -> str:
    shown = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) <= 0xFF
                             else f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= _CUT else f"{shown[:_CUT]}..."


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts, as audit lines name them (kept by a background job for its end line)."""

    role: str
    remote: str | None
    session: str

    def log(self, what: str, target: str, count: int | None, **detail: object) -> None:
        """One ``console.action`` line."""
        logs.get_logger().info("console.action", action=what, lot=target, count=count,
                               role=self.role, remote=self.remote, session=self.session,
                               **detail)


def actor(request: web.Request, sid: str | None = None) -> Actor:
    """The request's actor: its session (``sid``, else the cookie's)."""
    sid = sid or request.cookies.get(COOKIE)
    session = request.app[SESSIONS].get(sid)
    tag = hashlib.sha256(sid.encode()).hexdigest()[:8] if sid else "-"
    return Actor(session.role if session else "-", request.remote, tag)


def audit(request: web.Request, what: str, target: str, count: int | None,
          sid: str | None = None, **detail: object) -> None:
    """One ``console.action`` line: the action, what it acted on, how many (``None``: not
    known yet), who (``Actor``), and any ``detail`` (a filter, a window)."""
    actor(request, sid).log(what, target, count, **detail)
