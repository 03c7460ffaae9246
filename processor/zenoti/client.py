"""The Zenoti REST API client: one ``ZenotiClient`` per tenant over one shared connection pool.

Every call spends a token of the tenant's ``Budget``, sends ``Authorization: apikey``, feeds
the rate-limit headers back to the budget, and returns a model or raises the exception that
is the message's fate: 429 ``RateLimited`` (``Retry-After``); 5xx, timeouts, connection errors
``ZenotiUnavailable``; 404 or an ``error`` code meaning "absent" ``ResourceNotFound``; any other
refusal, a non-null ``error`` in a 2xx body, or a body the model rejects ``PermanentError``
(Zenoti reports errors both ways, REFERENCE 4.5). Messages name the endpoint and ids, never
the API key: text Zenoti sends back is scrubbed of it too.

Answers are cached per kind of resource and concurrent identical requests share one call
(``processor.zenoti.cache``, ``processor.zenoti.coalesce``); ``bound(received_at)`` gives the
view of one event, whose membership and package lists must be fetched after it was received,
and which counts the calls made for it (``calls``).

Broader questions: ``member`` and ``guest`` answer from a center's snapshot of its members
or guests (``processor.zenoti.snapshots``: a page of 100 per call) when one serves, and say so by
returning ``None`` (``member``) or making the point call (``guest``) when not. A list that
comes back without its wrapper key is a shape error (``UnexpectedResponse``), never an
empty list; for a snapshot it means point look-ups, counted, never a parked event.

Each request ends within ``deadline`` seconds in all, body included: httpx's own timeout
bounds each read, so a server dripping a byte every few seconds would otherwise hold the
message (and its prefetch slot) for minutes. Past the deadline: ``ZenotiUnavailable``.

A failed call is retried in place, at most ``retries`` times, when that is cheap: after a 5xx,
a timeout or a connection error (short jittered backoff), and after a 429 whose
``Retry-After`` is at most ``short_wait`` seconds (the budget holds every call of the tenant
until then). Longer waits raise, so the message waits in a delay queue instead of holding a
prefetch slot (``processor.worker.retry``). Every attempt waits at most ``short_wait`` for a token
(a short 429 pause included) and ``deadline`` for its answer, so the API part of one call,
retries included, lasts at most ``(retries + 1) * (short_wait + deadline)`` plus the backoffs
``backoff * 1.5 * (2**retries - 1)``: 36.9 s with the default settings.
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from processor.errors import (
    BudgetExhausted,
    PermanentError,
    RateLimited,
    ResourceNotFound,
    UnexpectedResponse,
    ZenotiUnavailable,
    describe,
)
from processor.metrics import Metrics
from processor.tracing.publishing import ENDPOINT, ROUTE
from processor.zenoti.budget import Budget
from processor.zenoti.cache import KINDS, ApiCache, Body, Kind, MemoryCache
from processor.zenoti.coalesce import Coalescer
from processor.zenoti.snapshots import Found, Page, Snapshots
from schemas import zenoti as api

__all__ = ["ZenotiClient"]

ModelT = TypeVar("ModelT", bound=BaseModel)

# Application error codes meaning "no such resource" (REFERENCE 4.5): 428 invoice not found;
# 505 invalid guest_id, from the guest and the guest-scoped lists.
_NOT_FOUND_CODES = {"invoice": frozenset({404, 428})}
_GUEST_NOT_FOUND = frozenset({404, 505})
# One page of the largest size Zenoti serves; a guest with more series packages at one
# center than this is not expected, and every further page would cost a call of the budget.
_PACKAGE_PAGE_SIZE = 100
_LIST_PAGE_SIZE = 100  # the most a Zenoti list serves per page
_CENTERS_KEPT = 86_400.0  # centers rarely change (REFERENCE 5.5: cache them)
_MAX_CENTER_PAGES = 20  # 2,000 centers: past any organisation we know of


@dataclass(frozen=True, slots=True)
class _Call:
    endpoint: str  # the fixed metric label, and the cache kind
    subject: str  # what was asked for, ids included, for messages
    path: str
    params: dict[str, str] | None = None
    route: str = ""  # the path's template, ids named not given: what traces show of the URL

    @property
    def key(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted((self.params or {}).items()))
        return f"{self.path}?{query}"


class ZenotiClient:
    """The Zenoti API as one tenant (organisation) sees it, through its own budget."""

    def __init__(
        self, http: httpx.AsyncClient, *, tenant: str, api_key: SecretStr, budget: Budget,
        metrics: Metrics, retries: int = 0, backoff: float = 0.2, short_wait: float = 2.0,
        cache: ApiCache | None = None, deadline: float = 10.0,
        snapshots: Snapshots | None = None,
    ) -> None:
        self._http = http
        self._deadline = deadline
        self._cache: ApiCache = cache or MemoryCache()
        self._flights: Coalescer[Body] = Coalescer(self._joined)
        self._fresh_after: float | None = None
        self._retries = retries
        self._backoff = backoff
        self._short_wait = short_wait
        self._tenant = tenant
        self._api_key = api_key
        self._budget = budget
        self._metrics = metrics
        self.snapshots = snapshots
        self.calls = 0  # requests made by this client or view (``bound``): one per event
        self._centers: list[tuple[float, list[str]]] = []  # shared by every view
        self._centers_asked = asyncio.Lock()  # one call for every event that wants them

    @property
    def tenant(self) -> str:
        return self._tenant

    def bound(self, fresh_after: float | None) -> ZenotiClient:
        """This client for one event: lists served only if fetched after ``fresh_after``
        (the event's receipt, seconds since the epoch). Shares everything else."""
        view = copy.copy(self)
        view._fresh_after = fresh_after
        view.calls = 0
        return view

    async def member(
        self, user_membership_id: str, center_id: str | None
    ) -> tuple[api.CenterMember, str] | None:
        """The center member row of a user membership, and its center, from a snapshot;
        ``None`` when no snapshot serves (then ask with point look-ups)."""
        found = None if self.snapshots is None else await self.snapshots.find(
            "members", user_membership_id, center_id)
        member = self._row(found, "members", api.CenterMember)
        return None if member is None or found is None else (member, found.center)

    async def guest(self, guest_id: str, center_id: str | None = None) -> api.Guest:
        """The guest from a center's snapshot when one serves, else ``GET /v1/guests/{id}``."""
        found = None if self.snapshots is None else await self.snapshots.find(
            "guests", guest_id, center_id)
        return self._row(found, "guests", api.Guest) or await self.get_guest(guest_id)

    async def known_guest(self, guest_id: str) -> api.Guest | None:
        """The guest if a loaded snapshot has them; never a call."""
        found = None if self.snapshots is None else await self.snapshots.peek("guests", guest_id)
        return self._row(found, "guests", api.Guest)

    def _row(self, found: Found | None, kind: str, model: type[ModelT]) -> ModelT | None:
        """A snapshot's row as ``model``; one it does not fit is counted and left unused."""
        if found is None:
            return None
        try:
            return model.model_validate(found.row)
        except ValidationError:
            self._metrics.snapshot_lookups.labels(kind=kind, result="unexpected_shape").inc()
            return None

    async def snapshot_page(self, kind: str, center: str, page: int, since: float | None) -> Page:
        """One page of ``center``'s members (``GET /v1/centers/{id}/members``) or guests
        (``GET /v1/guests?center_id=``), changed since ``since`` (a date: the filters take
        dates) when given. ``UnexpectedResponse`` if the list's wrapper key is missing."""
        params = {"page": str(page), "size": str(_LIST_PAGE_SIZE)}
        day = None if since is None else time.strftime("%Y-%m-%d", time.gmtime(since))
        if kind == "members":
            path, wrapper = f"/v1/centers/{_segment(center)}/members", "members"
            route = "/v1/centers/{center_id}/members"
            params.update({"last_updated_date": day} if day else {})
        else:
            path, wrapper, route = "/v1/guests", "guests", "/v1/guests"
            params.update({"center_id": center, **({"last_updated": day} if day else {})})
        call = _Call(f"center_{kind}", f"{kind} of center {center!r} (page {page})", path, params,
                     route)
        body = await self._fetch(call)
        items = _wrapped(body, wrapper, call, self._say)
        rows = {str(item["id"]).lower(): _kept(item, _SNAPSHOT_FIELDS[kind]) for item in items
                if isinstance(item, dict) and item.get("id")}
        paging = body.get("page_info") or body.get("page_Info")
        total = paging.get("total") if isinstance(paging, dict) else None
        more = (page * _LIST_PAGE_SIZE < total if isinstance(total, int)
                else len(items) >= _LIST_PAGE_SIZE)
        return Page(rows, more)

    async def center_ids(self) -> list[str]:
        """The organisation's centers (``GET /v1/centers``), asked once a day."""
        async with self._centers_asked:
            if self._centers and time.time() - self._centers[0][0] < _CENTERS_KEPT:
                return self._centers[0][1]
            ids: list[str] = []
            for page in range(1, _MAX_CENTER_PAGES + 1):
                params = {"page": str(page), "size": str(_LIST_PAGE_SIZE)}
                call = _Call("centers", f"centers (page {page})", "/v1/centers", params,
                             "/v1/centers")
                body = await self._fetch(call)
                listed = self._parse(call, api.CenterList, body)
                present = "centers" in listed.model_fields_set
                ids += [c.id for c in _wrapped_model(listed.centers, "centers", call,
                                                     self._say, present=present)]
                if len(listed.centers or ()) < _LIST_PAGE_SIZE:
                    break
            self._centers[:] = [(time.time(), ids)]
            return ids

    async def get_invoice(self, invoice_id: str) -> api.Invoice:
        """``GET /v1/invoices/{id}``: the invoice, whose ``guest`` leads to the guest."""
        path = f"/v1/invoices/{_segment(invoice_id)}"
        call = _Call("invoice", f"invoice {invoice_id!r}", path, route="/v1/invoices/{invoice_id}")
        return (await self._get(call, invoice_id, api.InvoiceResponse)).invoice

    async def get_guest(self, guest_id: str) -> api.Guest:
        """``GET /v1/guests/{id}``: the guest (unwrapped at the top level of the body)."""
        call = _Call("guest", f"guest {guest_id!r}", f"/v1/guests/{_segment(guest_id)}",
                     route="/v1/guests/{guest_id}")
        return await self._get(call, guest_id, api.Guest)

    async def list_memberships(self, guest_id: str, center_id: str) -> list[api.GuestMembership]:
        """``GET /v1/guests/{id}/memberships``; ``center_id`` is mandatory with an API key."""
        subject = f"memberships of guest {guest_id!r} at center {center_id!r}"
        path = f"/v1/guests/{_segment(guest_id)}/memberships"
        call = _Call("memberships", subject, path, {"center_id": center_id},
                     "/v1/guests/{guest_id}/memberships")
        listed = await self._get(call, f"{guest_id}:{center_id}", api.MembershipList)
        return _wrapped_model(listed.guest_memberships, "guest_memberships", call, self._say,
                              present="guest_memberships" in listed.model_fields_set)

    async def list_packages(self, guest_id: str, center_id: str) -> list[api.GuestPackage]:
        """``GET /v1/guests/{id}/packages``: the series packages of the first (largest) page."""
        subject = f"packages of guest {guest_id!r} at center {center_id!r}"
        path = f"/v1/guests/{_segment(guest_id)}/packages"
        params = {"center_id": center_id, "page_num": "1", "page_size": str(_PACKAGE_PAGE_SIZE)}
        call = _Call("packages", subject, path, params, "/v1/guests/{guest_id}/packages")
        listed = await self._get(call, f"{guest_id}:{center_id}", api.PackageList)
        return _wrapped_model(listed.packages, "packages", call, self._say,
                              present="packages" in listed.model_fields_set)

    async def _get(self, call: _Call, key: str, model: type[ModelT]) -> ModelT:
        """The answer to ``call`` as ``model``: from the cache when it may serve, else from
        the call (shared with identical ones in flight), then cached."""
        kind = KINDS[call.endpoint]
        return self._parse(call, model, await self._body(kind, f"{self._tenant}:{key}", call))

    async def _body(self, kind: Kind, key: str, call: _Call) -> Body:
        not_before = self._fresh_after if kind.event_fresh else None
        entry = await self._cache.get(kind, key)
        if entry is not None and (not_before is None or entry.fetched_at >= not_before):
            self._metrics.api_cache.labels(kind=kind.name, result="hit").inc()
            return entry.body
        self._metrics.api_cache.labels(kind=kind.name, result="miss").inc()
        body = await self._flights.run(
            f"{self._tenant}:{call.key}", not_before, lambda: self._fetch(call), call.endpoint
        )
        await self._cache.put(kind, key, body)
        return body

    def _joined(self, endpoint: str) -> None:
        self._metrics.api_coalesced.labels(endpoint=endpoint).inc()

    async def _fetch(self, call: _Call) -> Body:
        """``_attempt`` the call, retrying in place while that is cheap (see the module)."""
        for attempt in range(self._retries + 1):
            try:
                return await self._attempt(call)
            except BudgetExhausted:
                raise  # nothing was called: waiting is the broker's job
            except (ZenotiUnavailable, RateLimited) as exc:
                if attempt == self._retries or not self._cheap_to_retry(exc):
                    raise
                if not isinstance(exc, RateLimited):  # a 429 already paused the budget
                    await asyncio.sleep(self._backoff * 2**attempt * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _cheap_to_retry(self, exc: ZenotiUnavailable | RateLimited) -> bool:
        if isinstance(exc, RateLimited):
            return exc.retry_after is not None and exc.retry_after <= self._short_wait
        return True

    async def _attempt(self, call: _Call) -> Body:
        """Spend a token (or raise ``BudgetExhausted``), call, teach the budget, and return
        the checked JSON body."""
        try:
            waited = await self._budget.acquire(max_wait=self._short_wait)
        except BudgetExhausted:
            self._metrics.budget_deferred.labels(tenant=self._tenant).inc()
            raise
        self._metrics.tokens_wait_seconds.labels(tenant=self._tenant).observe(waited)
        self.calls += 1
        response = await self._send(call)
        remaining = _count(response.headers.get("RateLimit-Remaining"))
        if remaining is not None and remaining <= 0:
            self._metrics.budget_paused.labels(tenant=self._tenant).inc()
        self._budget.observe(remaining, _number(response.headers.get("RateLimit-Reset")))
        return self._payload(call, response)

    async def _send(self, call: _Call) -> httpx.Response:
        auth = {"Authorization": f"apikey {self._api_key.get_secret_value()}"}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline):
                # The extensions name the call's span and give its URL when tracing
                # (processor.tracing.publishing).
                response = await self._http.get(
                    call.path, params=call.params, headers=auth,
                    extensions={ENDPOINT: call.endpoint, ROUTE: call.route})
        except (httpx.TimeoutException, TimeoutError) as exc:
            self._record(call, "timeout", started)
            within = f"within {self._deadline:g} s" if isinstance(exc, TimeoutError) else "in time"
            message = f"Zenoti did not answer {within} for {call.subject}"
            raise ZenotiUnavailable(self._say(message)) from exc
        except httpx.RequestError as exc:
            self._record(call, "error", started)
            message = f"Zenoti unreachable for {call.subject} ({type(exc).__name__}: {exc})"
            raise ZenotiUnavailable(self._say(message)) from exc
        self._record(call, str(response.status_code), started)
        return response

    def _record(self, call: _Call, status: str, started: float) -> None:
        self._metrics.api_calls.labels(endpoint=call.endpoint, status=status).inc()
        elapsed = time.perf_counter() - started
        self._metrics.api_seconds.labels(endpoint=call.endpoint).observe(elapsed)

    def _payload(self, call: _Call, response: httpx.Response) -> dict[str, Any]:
        body = _json_object(response)
        raw_error = None if body is None else body.get("error")
        error = None if raw_error is None else api.ApiError.of(raw_error)
        self._raise_for_status(call, response.status_code, response.headers, error)
        if body is None:
            shape = f"Zenoti answered an unexpected shape for {call.subject}: not a JSON object"
            raise PermanentError(self._say(shape))
        if error is not None:
            failed = f"Zenoti answered an error for {call.subject}: {error}"
            raise PermanentError(self._say(failed))
        return body

    def _raise_for_status(
        self, call: _Call, status: int, headers: httpx.Headers, error: api.ApiError | None
    ) -> None:
        answer = f"{status}, {error or 'no error body'}"
        if status == 429:
            retry_after = _number(headers.get("Retry-After"))
            self._metrics.budget_paused.labels(tenant=self._tenant).inc()
            if retry_after is not None:
                self._budget.pause(retry_after)
            limited = f"Zenoti rate-limited the call for {call.subject} (retry after {retry_after})"
            raise RateLimited(self._say(limited), retry_after=retry_after)
        if status >= 500:
            raise ZenotiUnavailable(self._say(f"Zenoti answered {status} for {call.subject}"))
        absent = _NOT_FOUND_CODES.get(call.endpoint, _GUEST_NOT_FOUND)
        if status == 404 or (error is not None and error.code in absent):
            raise ResourceNotFound(self._say(f"Zenoti has no {call.subject} ({answer})"))
        if not 200 <= status < 300:
            raise PermanentError(self._say(f"Zenoti refused {call.subject} ({answer})"))

    def _parse(self, call: _Call, model: type[ModelT], body: dict[str, Any]) -> ModelT:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            # Not chained: a ValidationError quotes the input, guests' personal data included.
            shape = f"Zenoti answered an unexpected shape for {call.subject}: {describe(exc)}"
            raise PermanentError(self._say(shape)) from None

    def _say(self, message: str) -> str:
        """``message`` without the API key, should Zenoti ever echo it back."""
        key = self._api_key.get_secret_value()
        return message.replace(key, "[api key]") if key else message


ItemT = TypeVar("ItemT")
# What a snapshot keeps of each row: what the handlers read, nothing else (a guest row of
# Zenoti's carries far more personal data, and a center's rows are kept a day in Redis).
_Fields = dict[str, "_Fields | None"]
_SNAPSHOT_FIELDS: dict[str, _Fields] = {
    "members": {"id": None, "status": None, "guest": {"id": None, "code": None, "name": None},
                "membership": {"id": None, "code": None, "name": None, "type": None}},
    "guests": {"id": None, "code": None, "center_id": None, "center_name": None,
               "personal_info": {"first_name": None, "last_name": None, "email": None,
                                 "mobile_phone": None}},
}


def _kept(item: dict[str, Any], fields: _Fields) -> dict[str, Any]:
    """``item`` with only ``fields`` (nested where a field maps to its own fields)."""
    kept: dict[str, Any] = {}
    for name, inner in fields.items():
        value = item.get(name)
        if value is None:
            continue
        kept[name] = _kept(value, inner) if inner is not None and isinstance(value, dict) \
            else value
    return kept


def _wrapped(body: dict[str, Any], key: str, call: _Call, say: Any) -> list[Any]:
    """``body[key]`` as a list (null: empty); a missing key is a shape error, not nothing."""
    if key not in body:
        raise UnexpectedResponse(say(f"Zenoti answered {call.subject} without {key!r}"))
    value = body[key]
    return value if isinstance(value, list) else []


def _wrapped_model(items: list[ItemT] | None, key: str, call: _Call, say: Any,
                   present: bool = True) -> list[ItemT]:
    if not present:
        raise UnexpectedResponse(say(f"Zenoti answered {call.subject} without {key!r}"))
    return items or []


def _segment(value: str) -> str:
    """``value`` as one path segment: an id can never reach another endpoint."""
    return quote(value, safe="")


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # not JSON, or not UTF-8
        return None
    return body if isinstance(body, dict) else None


def _number(header: str | None) -> float | None:
    """A header's non-negative number (``2``, ``1.5``, ``60;w=60``); ``None`` if unreadable."""
    try:
        value = float((header or "").split(";")[0])
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def _count(header: str | None) -> int | None:
    number = _number(header)
    return None if number is None else int(number)

