"""Serving HTTP within bounds: ``httpserver`` (aiohttp with header, body, connection and
shutdown bounds) and ``probes`` (``/healthz``, ``/readyz``, ``/metrics`` on every process).
"""
