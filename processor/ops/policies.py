"""The broker policies of the topology: the values a queue argument cannot change later.

A quorum queue keeps the arguments it was declared with (a redeclaration with others is refused),
but a policy applies to an existing queue at once. The topology's policies:

- ``zenoti-events-work`` on the work queues ``zenoti.h.<handler>`` (pattern
  ``^zenoti\\.h\\.[a-z0-9-]+$``: handler names are lower-case letters, digits and ``-``, so it
  matches neither the delay queues nor the parking lots): ``delivery-limit`` = ``DELIVERY_LIMIT``.
  RabbitMQ 3.10 to 4.x apply the lower of the policy's and the queue's ``x-delivery-limit``.
- ``zenoti-events-archive`` on ``zenoti.archive``: ``max-age``, ``max-length-bytes``,
  ``stream-max-segment-size-bytes`` from the ``ARCHIVE_*`` settings; a stream's policy takes
  precedence over its arguments.

What stays an argument, and why: the queue type; the dead-letter exchange, routing key and
strategy and ``x-overflow`` (for quorum queues the argument wins over a policy for the
dead-letter keys, so without any policy nothing is ever dropped); the delay queues' TTL (a
tier's TTL is in its queue's name: other tiers are other queues); and the delivery limit of a
new work queue, as its ceiling (no work queue is ever without a limit, policy or not).

``zenoti-events topology`` puts them over the management HTTP API (``MANAGEMENT_URL``, by
default the first broker address's host on 15672, or 15671 for ``amqps``, with its user), which
AMQP cannot do. The broker's credentials go to no other host, and never over ``http://`` when
the broker is on TLS (``Management.of``); an API that cannot be reached is a warning, one that
refuses (a redirect, 4xx, 5xx) stops the command with a non-zero exit (``ensure``). The
ingress and workers never need the API. On Kubernetes the messaging topology operator applies
the same policies (``deploy/k8s/base/policies.yaml``); elsewhere ``rabbitmqctl set_policy``
(``Policy.rabbitmqctl``) does.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

import aiohttp
from structlog.typing import FilteringBoundLogger

from processor.broker.connect import parse
from processor.errors import ConfigError
from processor.settings import Settings

WORK = "zenoti-events-work"
ARCHIVE = "zenoti-events-archive"
WORK_PATTERN = r"^zenoti\.h\.[a-z0-9-]+$"
ARCHIVE_PATTERN = r"^zenoti\.archive$"
PRIORITY = 10
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class PolicyError(Exception):
    """The management API could not be reached (refused, reset, timed out, TLS failed): no HTTP
    answer. Its text names the API's address and the error's type, never a credential."""


class PolicyRefused(PolicyError):
    """The management API answered, but not with success: a redirect (never followed: it would
    carry the credentials elsewhere), 4xx (credentials, the user's ``policymaker`` tag, the
    vhost, the URL's path) or 5xx. ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def exit_code(self) -> int:
        """``zenoti-events topology``'s exit code: 2 for a redirect or 4xx (settings or rights
        to fix: running again cannot help, as for a ``ConfigError``), 1 for a 5xx."""
        return 1 if self.status >= 500 else 2


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy: applies to the queues whose name matches ``pattern`` (the highest
    ``priority`` of those matching a queue is its only policy)."""

    name: str
    pattern: str
    definition: dict[str, Any] = field(default_factory=dict)
    priority: int = PRIORITY
    apply_to: str = "queues"

    def body(self) -> dict[str, Any]:
        """The management API's ``PUT /api/policies/<vhost>/<name>`` body."""
        return {"pattern": self.pattern, "definition": self.definition,
                "priority": self.priority, "apply-to": self.apply_to}

    def rabbitmqctl(self, vhost: str) -> list[str]:
        """The ``rabbitmqctl set_policy`` command that sets it, as an argument list."""
        return ["rabbitmqctl", "set_policy", "-p", vhost, self.name, self.pattern,
                json.dumps(self.definition), "--apply-to", self.apply_to,
                "--priority", str(self.priority)]


def policies_for(settings: Settings) -> list[Policy]:
    """The topology's policies as ``settings`` shape them."""
    return [
        Policy(WORK, WORK_PATTERN, {"delivery-limit": settings.delivery_limit}),
        Policy(ARCHIVE, ARCHIVE_PATTERN, {
            "max-age": settings.archive_max_age, "max-length-bytes": settings.archive_max_bytes,
            "stream-max-segment-size-bytes": settings.archive_segment_bytes}),
    ]


@dataclass(frozen=True, slots=True)
class Management:
    """Where the management API answers (``base`` without credentials), as whom, for which
    virtual host (the AMQP URL's). The password stays out of the ``repr``."""

    base: str
    user: str
    password: str = field(repr=False)
    vhost: str = "/"

    @classmethod
    def of(cls, settings: Settings) -> Management:
        """``MANAGEMENT_URL`` if set, else the first broker address's host on 15672 (15671 for
        ``amqps``) with its credentials. ``ConfigError`` (naming no credential) for a URL that
        would send credentials in clear or to another host:

        - ``http://`` while ``AMQP_URL`` is ``amqps://`` (a deployment on TLS);
        - a URL without its own user and password whose host is none of ``AMQP_URL``'s
          addresses, while those carry credentials (the broker's are never sent elsewhere);
        - a user without a password, other than that broker address's user (a user of one URL
          never goes with the password of the other), or a password without a user.
        """
        addresses = [urlsplit(url) for url in parse(settings.amqp_url.get_secret_value())]
        amqp = addresses[0]
        vhost = unquote(amqp.path[1:]) if len(amqp.path) > 1 else "/"
        tls = amqp.scheme.lower() == "amqps"
        given = settings.management_url.get_secret_value() if settings.management_url else ""
        if not given:
            scheme, port = ("https", 15671) if tls else ("http", 15672)
            base = f"{scheme}://{_bracketed(amqp.hostname or '')}:{port}"
            return cls(base, unquote(amqp.username or "guest"),
                       unquote(amqp.password or "guest"), vhost)
        url = urlsplit(given)
        return cls(_base(url, tls), *_credentials(url, addresses), vhost)

    def authorization(self) -> dict[str, str]:
        """HTTP basic authentication as the API's user."""
        return {"Authorization": f"Basic {self._pair()}"}

    def redact(self, text: str) -> str:
        """``text`` without the password or the basic-authentication pair (an answer's body
        that echoes a request must not carry them into a log)."""
        for secret in (self.password, self._pair()):
            if secret:
                text = text.replace(secret, "***")
        return text

    def url(self, *parts: str) -> str:
        return "/".join([self.base, "api", *(quote(p, safe="") for p in parts)])

    def _pair(self) -> str:
        return base64.b64encode(f"{self.user}:{self.password}".encode()).decode()


def _base(url: SplitResult, tls: bool) -> str:
    """``MANAGEMENT_URL`` without its credentials; ``ConfigError`` for one that is no http(s)
    URL with a host, or is ``http://`` on a deployment on TLS."""
    scheme = url.scheme.lower()
    try:
        port = url.port
    except ValueError:
        port = -1
    if scheme not in ("http", "https") or not url.hostname or port == -1:
        raise ConfigError("MANAGEMENT_URL: not an http:// or https:// URL with a host and a "
                          "valid port")
    if tls and scheme == "http":
        raise ConfigError(
            "MANAGEMENT_URL is http:// while AMQP_URL is amqps://: the management API's "
            "credentials would cross the network in clear; give its https:// URL (15671)")
    at = f":{port}" if port else ""
    return f"{scheme}://{_bracketed(url.hostname)}{at}{url.path.rstrip('/')}"


def _credentials(url: SplitResult, addresses: Sequence[SplitResult]) -> tuple[str, str]:
    """The user and password for ``MANAGEMENT_URL``: its own when it has both; else those of
    the AMQP address on its host (its user, if named, must be that address's); else guest when
    no AMQP address carries credentials. ``ConfigError`` otherwise."""
    user, password = unquote(url.username or ""), unquote(url.password or "")
    if user and password:
        return user, password
    if password:
        raise ConfigError("MANAGEMENT_URL has a password without a user")
    broker = next((a for a in addresses if a.hostname == url.hostname), None)
    if broker is None:
        if any(a.username or a.password for a in addresses):
            raise ConfigError(
                "MANAGEMENT_URL: its host is none of AMQP_URL's, and AMQP_URL's credentials "
                "are only sent to the broker's own host; put the management API's user and "
                "password in MANAGEMENT_URL")
        return user or "guest", "guest"
    amqp_user = unquote(broker.username or "guest")
    if user and user != amqp_user:
        raise ConfigError(
            "MANAGEMENT_URL names a user without a password, not AMQP_URL's user: AMQP_URL's "
            "password is only used with its own user; give that user's password in "
            "MANAGEMENT_URL")
    return amqp_user, unquote(broker.password or "guest")


def _bracketed(host: str) -> str:
    """A host as a URL holds it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def describe(exc: BaseException) -> str:
    """What went wrong, from the exception's type and its OS error's text only: never its
    ``repr`` or ``str``, which for aiohttp's errors can hold the request and its headers
    (``Authorization``)."""
    kind = type(exc).__name__
    if isinstance(exc, TimeoutError):
        return f"{kind}: no answer within {_TIMEOUT.total:g} s"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{kind}: HTTP {exc.status}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{kind}: {exc.strerror}"
    return kind


async def apply(policies: Sequence[Policy], api: Management) -> None:
    """Put every policy in ``api``'s virtual host (creating or replacing it). ``PolicyRefused``
    for an answer other than 200, 201 or 204 (redirects are not followed: any 3xx is one),
    ``PolicyError`` when no answer came."""
    async with aiohttp.ClientSession(timeout=_TIMEOUT, headers=api.authorization()) as session:
        for policy in policies:
            url = api.url("policies", api.vhost, policy.name)
            try:
                async with session.put(url, json=policy.body(),
                                       allow_redirects=False) as answer:
                    if answer.status in (200, 201, 204):
                        continue
                    detail = await _detail(answer, api)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise PolicyError(f"{policy.name}: {api.base}: {describe(exc)}") from None
            raise PolicyRefused(f"{policy.name}: HTTP {answer.status} from {api.base}"
                                f"{_HINTS.get(answer.status // 100 * 100, '')}: {detail}",
                                answer.status)


_HINTS = {300: " (a redirect, not followed: MANAGEMENT_URL must name the API itself)"}


async def _detail(answer: aiohttp.ClientResponse, api: Management) -> str:
    """The start of an answer's body, printable and without the credentials."""
    try:
        text = (await answer.text(errors="replace"))[:300]
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return f"(body unread: {describe(exc)})"
    return api.redact("".join(c if c.isprintable() else " " for c in text))


async def ensure(settings: Settings, log: FilteringBoundLogger) -> bool:
    """Apply the policies of ``settings``. When the API cannot be reached, log
    ``topology.policies_not_applied`` once (a warning), with the ``rabbitmqctl`` commands that
    do the same, and return False: the processes run without policies (every work queue has its
    argument's limit). When it answers with a refusal (a redirect, 4xx, 5xx), log
    ``topology.policies_refused`` (an error, with the same commands) and raise
    ``PolicyRefused``: ``zenoti-events topology`` then exits non-zero, so a Job that was meant
    to put the policies does not pass without them. ``ConfigError`` (``Management.of``) for a
    ``MANAGEMENT_URL`` that would send credentials in clear or to another host."""
    api = Management.of(settings)
    wanted = policies_for(settings)
    commands = [shlex.join(p.rabbitmqctl(api.vhost)) for p in wanted]
    try:
        await apply(wanted, api)
    except PolicyRefused as exc:
        log.error("topology.policies_refused", error=str(exc), status=exc.status,
                  vhost=api.vhost, commands=commands,
                  detail="the management API refused the policies: check MANAGEMENT_URL, the "
                         "user's password and policymaker tag and its permissions on the vhost "
                         "(docs/operations.md, 'Policies')")
        raise
    except PolicyError as exc:
        log.warning("topology.policies_not_applied", error=str(exc), vhost=api.vhost,
                    commands=commands,
                    detail="set them with rabbitmqctl, or the topology operator's Policy "
                           "objects (docs/operations.md, 'Policies')")
        return False
    log.info("topology.policies_applied", management=api.base, vhost=api.vhost,
             policies={p.name: p.definition for p in wanted})
    return True
