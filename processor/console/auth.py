"""Log-in by token, random session ids, a per-session CSRF token, all compared in constant time;
sessions that expire, and failed log-ins throttled.

Why the bounds: a stolen cookie should not be good until the process restarts (sessions end
after ``IDLE`` without a request and ``LIFETIME`` in all), logging in again and again should
not grow the process (at most ``MAX_SESSIONS``, the oldest evicted), and the token should not
be guessable at the speed of the network (``LoginThrottle``)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr

COOKIE = "zenoti_console"
IDLE = 30 * 60.0  # seconds without a request
LIFETIME = 12 * 3600.0  # seconds from the log-in, however active
MAX_SESSIONS = 1000
MIN_TOKEN = 16  # characters, checked when the process starts (``check_tokens``)


@dataclass
class Session:
    role: str  # "read" | "write"
    started: float
    seen: float
    ident: str  # names the session in audit lines without being its id
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class Sessions:
    """In-memory sessions of one console process (a restart logs everyone out)."""

    def __init__(self, token: SecretStr, write_token: SecretStr | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not token.get_secret_value():
            raise ValueError("CONSOLE_TOKEN is empty")
        self._token = token
        self._write = write_token
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def log_in(self, offered: str) -> str | None:
        """A new session id for a right token, else None."""
        role = None
        if self._write and _same(offered, self._write.get_secret_value()):
            role = "write"
        elif _same(offered, self._token.get_secret_value()):
            role = "read"
        if role is None:
            return None
        while len(self._sessions) >= MAX_SESSIONS:  # dicts keep insertion order: oldest first
            del self._sessions[next(iter(self._sessions))]
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        self._sessions[sid] = Session(role, now, now, hashlib.sha256(sid.encode()).hexdigest()[:8])
        return sid

    def get(self, sid: str | None) -> Session | None:
        """The live session of ``sid`` (its idle time restarts), else None; an expired one is
        forgotten."""
        session = self._sessions.get(sid) if sid else None
        if session is None or sid is None:
            return None
        now = self._clock()
        if now - session.seen > IDLE or now - session.started > LIFETIME:
            del self._sessions[sid]
            return None
        session.seen = now
        return session

    def log_out(self, sid: str | None) -> None:
        if sid:
            self._sessions.pop(sid, None)


class LoginThrottle:
    """At most ``per_remote`` failed log-ins a ``window`` from one address and ``overall`` from
    all (behind a port-forward or a proxy every operator is one address): past either, log-ins
    are refused until the window has passed, right token or not."""

    def __init__(self, per_remote: int = 10, overall: int = 100, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._per_remote, self._overall, self._window = per_remote, overall, window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def wait(self, remote: str) -> float:
        """Seconds until ``remote`` may try again (0: now)."""
        now = self._clock()
        waits = [self._left(self._all, self._overall, now)]
        mine = self._failures.get(remote)
        if mine is not None:
            waits.append(self._left(mine, self._per_remote, now))
            if not mine:
                del self._failures[remote]
        return max(waits)

    def failed(self, remote: str) -> None:
        now = self._clock()
        if len(self._failures) >= MAX_SESSIONS and remote not in self._failures:
            self._failures.clear()  # a flood of addresses: the overall bound still holds
        self._failures.setdefault(remote, deque()).append(now)
        self._all.append(now)

    def _left(self, times: deque[float], limit: int, now: float) -> float:
        while times and now - times[0] >= self._window:
            times.popleft()
        return self._window - (now - times[-limit]) if len(times) >= limit else 0.0


def check_tokens(token: SecretStr | None, write_token: SecretStr | None) -> list[str]:
    """What is wrong with the configured tokens (empty: nothing), for start-up to refuse."""
    problems = []
    if token is None or not token.get_secret_value().strip():
        return ["CONSOLE_TOKEN is required (the console has no default credentials)"]
    if len(token.get_secret_value()) < MIN_TOKEN:
        problems.append(f"CONSOLE_TOKEN is shorter than {MIN_TOKEN} characters")
    if write_token is not None:
        if len(write_token.get_secret_value()) < MIN_TOKEN:
            problems.append(f"CONSOLE_WRITE_TOKEN is shorter than {MIN_TOKEN} characters")
        if _same(write_token.get_secret_value(), token.get_secret_value()):
            problems.append("CONSOLE_WRITE_TOKEN equals CONSOLE_TOKEN (every log-in would "
                            "write): give the read-only role a token of its own")
    return problems


def csrf_ok(session: Session, offered: str | None) -> bool:
    return offered is not None and _same(offered, session.csrf)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
