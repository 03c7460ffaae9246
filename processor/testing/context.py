"""``make_context``: the ``Context`` a handler is given, made for a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import structlog

from processor.handler import Context
from processor.testing.events import TENANT
from processor.testing.recorder import Recorder
from processor.testing.sandbox import ZenotiSandbox

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

    from processor.zenoti_api import ZenotiApi


@asynccontextmanager
async def make_context(
    zenoti: ZenotiApi | None = None, *, sandbox: ZenotiSandbox | None = None,
    recorder: Recorder | None = None, log: FilteringBoundLogger | None = None,
    tenant: str = TENANT, **client_options: Any,
) -> AsyncIterator[Context]:
    """``async with make_context() as ctx``: a ``Context`` whose ``publish`` is ``recorder``
    (a new ``Recorder`` unless given; ``recorder_of(ctx)`` finds it), whose ``log`` is
    ``log`` or a structlog logger (read it with ``structlog.testing.capture_logs``), and whose
    ``zenoti`` is ``zenoti`` when given, else a real ``ZenotiClient`` of ``tenant`` talking
    over HTTP to ``sandbox`` (``client_options`` go to it, e.g. ``retries=2``). Without a
    sandbox, one is started for this context alone and stopped after it: to share one across
    tests, give the ``zenoti_sandbox`` fixture's. The client is closed on exit."""
    async with AsyncExitStack() as stack:
        if zenoti is None:
            if sandbox is None:
                sandbox = stack.enter_context(ZenotiSandbox())
            zenoti = await stack.enter_async_context(sandbox.client(tenant, **client_options))
        yield Context(zenoti=zenoti, log=log or structlog.get_logger(),
                      publish=recorder if recorder is not None else Recorder())


def recorder_of(ctx: Context) -> Recorder:
    """The ``Recorder`` that is ``ctx.publish``; ``TypeError`` if it is something else."""
    if not isinstance(ctx.publish, Recorder):
        raise TypeError(f"ctx.publish is {ctx.publish!r}, not a Recorder: make the context "
                        "with make_context")
    return ctx.publish
