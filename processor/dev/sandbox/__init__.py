"""A stand-in for the Zenoti REST API: a real HTTP server over deterministic synthetic data.

Start it with ``run_sandbox(SandboxConfig(...))`` (or ``zenoti-events sandbox``), or, in
tests, ``async with SandboxServer(SandboxConfig(port=0)) as server`` and call ``server.url``.
The rate limit (``budget``) and faults (``faults``) are importable from their modules.
Nothing here runs at import.
"""

from processor.dev.sandbox.config import SandboxConfig
from processor.dev.sandbox.organisation import Organisation
from processor.dev.sandbox.server import Sandbox, SandboxServer, SandboxStats, run_sandbox

__all__ = [
    "Organisation",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SandboxStats",
    "run_sandbox",
]
