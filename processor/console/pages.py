"""Server-rendered HTML: every value goes through ``html.escape`` (ids and types are
attacker-controlled); no inline script or style, so the CSP can forbid them."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_NAV = (("nav-overview", "/", "Overview"), ("nav-lots", "/lots", "Parking lots"),
        ("nav-types", "/types", "Unrouted types"), ("nav-archive", "/archive", "Archive"))
ISO_HINT = "2026-12-03T08:00Z"
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def when(moment: datetime | None) -> str:
    """A time to the second in UTC ("2026-12-03 07:48:33Z"), "-" without one."""
    if moment is None:
        return "-"
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%d %H:%M:%SZ")


def at(moment: datetime | None) -> str:
    """``when`` as HTML that a table cell does not wrap."""
    return f"<span class='when'>{esc(when(moment))}</span>"


def plain(value: object) -> str:
    """A header's value as text, an ISO 8601 time in it to the second (``when``)."""
    text = str(value)
    if _ISO.match(text):
        with contextlib.suppress(ValueError):
            return when(datetime.fromisoformat(text))
    return text


def page(title: str, body: str, csrf: str | None = None, current: str = "") -> str:
    """A whole page; with ``csrf`` (a logged-in session's token) the nav's links, the one to
    ``current`` marked, and its log-out form (button ``logout``); without, no nav (every
    link needs a log-in)."""
    nav = "" if csrf is None else f"<nav>{_links(current)}{_logout(csrf)}</nav>"
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{esc(title)} - zenoti-events</title>"
            "<link rel='stylesheet' href='/static/console.css'></head><body>"
            f"{nav}<h1>{esc(title)}</h1>{body}</body></html>")


def _links(current: str) -> str:
    return "".join(
        f"<a href='{href}' id='{name}'"
        + (" aria-current='page'" if href == _section(current) else "") + f">{text}</a>"
        for name, href, text in _NAV)


def _section(path: str) -> str:
    """The nav's link ``path`` is under (a lot and its messages: the lots)."""
    return "/lots" if path.startswith("/lot/") else path


def _logout(csrf: str) -> str:
    return ("<form method='post' action='/logout' class='inline'>"
            f"<input type='hidden' name='csrf' value='{esc(csrf)}'>"
            "<button type='submit' id='logout' class='link'>Log out</button></form>")


def table(titles: Iterable[str], rows: Iterable[Iterable[str]], ident: str = "") -> str:
    """``rows`` hold HTML already escaped by the caller (cells may carry links); ``ident``
    gives the table an element id."""
    head = "".join(f"<th>{esc(t)}</th>" for t in titles)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attribute = f" id='{esc(ident)}'" if ident else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def hidden(fields: dict[str, object]) -> str:
    """Hidden inputs carrying ``fields`` (names are ours, values escaped)."""
    return "".join(f"<input type='hidden' name='{esc(n)}' value='{esc(v)}'>"
                   for n, v in fields.items())


def summary(items: Iterable[tuple[str, object]]) -> str:
    """A definition list (id ``summary``) of the items with a value (none empty)."""
    return "<dl class='summary' id='summary'>" + "".join(
        f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in items
        if value not in ("", None)) + "</dl>"


def fields(names: Iterable[tuple[str, str]], query: Any, button: str) -> str:
    """A GET form (the filter's): a labelled box per ``(name, label)`` in a grid, times with
    the ISO format as a placeholder, then the ``filter`` button saying ``button``."""
    boxes = "".join(
        f"<label>{esc(label)}<input name='{esc(name)}' value='{esc(query.get(name, ''))}'"
        + (f" placeholder='{ISO_HINT}' class='time'" if name in ("since", "until") else "")
        + "></label>" for name, label in names)
    return (f"<form method='get' class='filter'>{boxes}"
            f"<button type='submit' id='filter'>{esc(button)}</button></form>")


CSS = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:80em}
table{border-collapse:collapse;margin-bottom:.5em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;font-size:.9em}
pre{background:#f6f6f6;padding:.5em;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
code,pre{font-family:monospace,monospace}.when{white-space:nowrap}
code.block{display:block;background:#f6f6f6;padding:.4em .6em;font-size:.9em;min-width:24em;
white-space:pre-wrap;overflow-wrap:anywhere}
h1{overflow-wrap:anywhere;word-break:break-word}
nav{margin-bottom:1em;display:flex;gap:1em;align-items:center;flex-wrap:wrap}
nav a,button.link{color:#0645ad;text-decoration:none;background:none;border:0;padding:0;
font:inherit;cursor:pointer}
nav a:hover,button.link:hover{text-decoration:underline}
nav a[aria-current=page]{color:#222;font-weight:bold;border-bottom:2px solid #222}
.inline{display:inline}.down{color:#a00}.note{color:#666}
form.filter{display:grid;grid-template-columns:repeat(4,minmax(10em,16em));gap:.5em 1em;
align-items:end;margin-bottom:1em}
form.filter label{display:flex;flex-direction:column;font-size:.85em;color:#444;gap:.15em}
form.filter input{font-size:1.05em;padding:.2em}
form.filter button{justify-self:start;padding:.3em 1.2em}
.actions{border:1px solid #ddd;background:#fafafa;padding:.5em;margin:.5em 0 1em}
.actions p{margin:.2em 0 .5em}
dl.summary{display:grid;grid-template-columns:max-content 1fr;gap:.25em 1em}
dl.summary dt{font-weight:bold}dl.summary dd{margin:0;overflow-wrap:anywhere}
"""
