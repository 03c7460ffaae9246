"""The zenoti-events pytest plugin: fixtures to test a handler in a few lines.

Registered as the ``pytest11`` entry point ``zenoti_events``, so pytest loads it wherever
zenoti-events is installed (``-p no:zenoti_events`` turns it off). Importing it imports nothing
of zenoti-events: each fixture imports the kit when first used, so a test run that uses none
pays nothing.

==================  =========  ==================================================================
fixture             scope      gives
==================  =========  ==================================================================
``zenoti_sandbox``  session    a ``ZenotiSandbox`` serving on a free port (started at first use)
``recorder``        function   the ``Recorder`` that is ``handler_context.publish``
``handler_context`` function   a ``Context``: a real ``ZenotiClient`` talking to the sandbox,
                               ``recorder`` as ``publish``, a structlog logger (async: it needs
                               pytest-asyncio, as the tests of an async handler do)
``event_of``        function   ``processor.testing.event_of``: a webhook body as the ``Event``
                               the worker would give the handler
==================  =========  ==================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from processor.handler import Context
    from processor.testing.recorder import Recorder
    from processor.testing.sandbox import ZenotiSandbox


@pytest.fixture(scope="session")
def zenoti_sandbox() -> Iterator[ZenotiSandbox]:
    """The sandbox Zenoti of this test session, stopped at its end."""
    from processor.testing.sandbox import ZenotiSandbox

    with ZenotiSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def recorder() -> Recorder:
    """What the handler published through ``handler_context``."""
    from processor.testing.recorder import Recorder

    return Recorder()


@pytest.fixture
def event_of() -> Callable[..., Any]:
    """``processor.testing.event_of``, for tests that would rather not import it."""
    from processor.testing.events import event_of

    return event_of


async def _handler_context(zenoti_sandbox: ZenotiSandbox,
                           recorder: Recorder) -> AsyncIterator[Context]:
    """A ``Context`` on the session's sandbox, publishing into ``recorder``."""
    from processor.testing.context import make_context

    async with make_context(sandbox=zenoti_sandbox, recorder=recorder) as ctx:
        yield ctx


def _async_fixture(function: Callable[..., AsyncIterator[Any]]) -> Any:
    """``function`` as pytest-asyncio's fixture (in its strict mode too); without
    pytest-asyncio, a fixture that fails saying what to install."""
    try:
        import pytest_asyncio
    except ImportError:
        def missing() -> None:
            pytest.fail(f"the {name} fixture needs pytest-asyncio: pip install pytest-asyncio")

        name = function.__name__.lstrip("_")
        return pytest.fixture(name=name)(missing)
    return pytest_asyncio.fixture(name=function.__name__.lstrip("_"))(function)


handler_context = _async_fixture(_handler_context)
