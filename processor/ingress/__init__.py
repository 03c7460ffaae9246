"""The HTTP ingress: verify a Zenoti delivery, decode its envelope, publish it with a confirm.

``app`` (the aiohttp application), ``signature`` (HMAC verification), ``envelope`` (bytes to
``Envelope`` and idempotency key).
"""
