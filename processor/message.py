"""The message contract: ids and AMQP header names, one place for every module that writes or
reads a queued message.

Ids: an event's message id is ``<tenant>:<key>``, an output's ``<tenant>:<key>:<handler>:<output>``;
AMQP short strings (message id, routing key) hold at most 255 bytes, so longer ones are
``bounded``: a readable head and a SHA-256 of the whole.
"""

from __future__ import annotations

import hashlib

# AMQP short strings (message_id, routing key) hold at most 255 bytes.
SHORTSTR_BYTES = 255
_KEPT_BYTES = 160


def bounded(value: str, limit: int = SHORTSTR_BYTES) -> str:
    """``value`` if it fits ``limit`` UTF-8 bytes, else its readable head and a SHA-256 of the
    whole: ``<first 160 bytes>~<40 hex>``, stable and distinct for distinct values. The original
    travels in headers and body; only AMQP's short-string fields get the bounded form."""
    try:
        raw = value.encode()
    except UnicodeEncodeError:  # a lone surrogate: hashed, never sent as it is
        raw, limit = value.encode("utf-8", "surrogatepass"), 0
    if len(raw) <= limit:
        return value
    head = raw[:_KEPT_BYTES].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha256(raw).hexdigest()[:40]}"


def scoped_key(tenant: str, key: str) -> str:
    """The message id of an event of ``tenant``: ``<tenant>:<key>``, bounded. Tenant names
    hold no ``:``, so two tenants' ids never meet however their event ids are chosen."""
    return bounded(f"{tenant}:{key}")
