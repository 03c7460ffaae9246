"""The console's aiohttp application: security headers, log-in and log-out, and the pages
(``overview``, ``lots``, ``archive_page``), each a module that adds its own routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from processor import logs
from processor.console import archive_page, lots, overview
from processor.console.auth import COOKIE, LIFETIME, LoginThrottle, Sessions, csrf_ok
from processor.console.common import SESSION, SESSIONS, SETTINGS, audit, html
from processor.console.pages import CSS, esc
from processor.settings import Settings

__all__ = ["SESSIONS", "make_app"]

_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_OPEN = ("/login", "/static/console.css", "/healthz")
_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(settings: Settings) -> web.Application:
    """The console; ``ValueError`` without ``CONSOLE_TOKEN`` (no default credentials)."""
    if settings.console_token is None or not settings.console_token.get_secret_value():
        raise ValueError("CONSOLE_TOKEN is required (the console has no default credentials)")
    app = web.Application(middlewares=[_failures, _auth])
    app.on_response_prepare.append(_headers)
    app[SESSIONS] = Sessions(settings.console_token, settings.console_write_token)
    app[_THROTTLE] = LoginThrottle()
    app[SETTINGS] = settings
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/login", _login_form)
    app.router.add_post("/login", _login)
    app.router.add_post("/logout", _logout)
    app.router.add_get("/static/console.css", _css)
    overview.install(app)
    lots.add_routes(app)
    archive_page.install(app)
    return app


async def _headers(_: web.Request, response: web.StreamResponse) -> None:
    """On every answer, errors and aiohttp's own included (a signal, not a middleware, so
    nothing can bypass it); ``Server`` names no versions."""
    response.headers.update(_HEADERS)
    response.headers["Server"] = "zenoti-events"


@web.middleware
async def _failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An unexpected failure is one log line and a plain 500 naming nothing of its cause."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        logs.get_logger().error("console.page_failed", path=request.path,
                                error=type(exc).__name__, exc_info=True)
        raise web.HTTPInternalServerError(text="the console failed on this page; "
                                               "its log says why") from None


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but the log-in needs a session; every POST its CSRF token (else 403)."""
    if request.path in _OPEN:
        return await handler(request)
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "POST":
            raise web.HTTPForbidden(text="log in first")
        raise web.HTTPSeeOther("/login")
    if request.method == "POST":
        form = await request.post()
        token = form.get("csrf")
        if not csrf_ok(session, token if isinstance(token, str) else None):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    request[SESSION] = session
    return await handler(request)


async def _healthz(_: web.Request) -> web.Response:
    """The process serves (its sources are the overview's business): for probes."""
    return web.Response(text="ok")


async def _css(_: web.Request) -> web.Response:
    return web.Response(text=CSS, content_type="text/css")


async def _login_form(request: web.Request, note: str = "", status: int = 200) -> web.Response:
    return html(request, "Log in", f"<p>{esc(note)}</p><form method='post' action='/login'>"
                "<label>Token <input type='password' name='token' id='token'></label> "
                "<button type='submit' id='login'>Log in</button></form>", status)


async def _login(request: web.Request) -> web.Response:
    """A session for a right token. Refused: from another site (log-in CSRF: a page elsewhere
    logging the browser into a session of its choosing), and past ``LoginThrottle``'s bound
    of failures (429 with ``Retry-After``); a wrong token is 401."""
    _same_site(request)
    remote = request.remote or "-"
    wait = request.app[_THROTTLE].wait(remote)
    if wait > 0:
        raise web.HTTPTooManyRequests(text="too many failed log-ins: try again later",
                                      headers={"Retry-After": str(int(wait) + 1)})
    form = await request.post()
    offered = form.get("token")
    sid = request.app[SESSIONS].log_in(offered if isinstance(offered, str) else "")
    if sid is None:
        request.app[_THROTTLE].failed(remote)
        logs.get_logger().warning("console.login_refused", remote=remote)
        return await _login_form(request, "Wrong token.", 401)
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, sid, httponly=True, samesite="Strict", max_age=int(LIFETIME),
                        secure=request.app[SETTINGS].console_secure_cookie, path="/")
    audit(request, "login", "-", 0, sid)
    raise response


def _same_site(request: web.Request) -> None:
    """403 for a POST a browser says came from another site. ``Sec-Fetch-Site`` decides when
    sent (every current browser); else an ``Origin`` naming another host. ``Origin: null`` is
    no evidence: under our ``Referrer-Policy: no-referrer`` Chromium sends it for the log-in
    form's own POST. Clients that send neither (curl, probes) are let through."""
    fetched = request.headers.get("Sec-Fetch-Site")
    if fetched is not None:
        if fetched not in ("same-origin", "none"):
            raise web.HTTPForbidden(text="a log-in from another site is refused")
        return
    origin = request.headers.get("Origin")
    if origin not in (None, "null") and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(text="a log-in from another origin is refused")


async def _logout(request: web.Request) -> web.Response:
    audit(request, "logout", "-", 0)
    request.app[SESSIONS].log_out(request.cookies.get(COOKIE))
    raise web.HTTPSeeOther("/login")
