"""The zenoti-events pytest plugin: fixtures to test a handler in a few lines.

Registered as the ``pytest11`` entry point ``zenoti_events``, so pytest loads it wherever
zenoti-events is installed (``-p no:zenoti_events`` turns it off). Loading it imports pytest
alone (and the standard library's ``types`` and ``typing``): each fixture imports the kit when
first used, and the async one is made at ``pytest_configure``, pytest-asyncio imported then, so
a test run that uses no fixture pays nothing. (Python imports its parent packages first:
``processor`` and ``processor.testing`` import their names on first use too.)

==========================  =========  ==========================================================
fixture                     scope      gives
==========================  =========  ==========================================================
``zenoti_sandbox``          session    a ``ZenotiSandbox`` serving on a free port (started at
                                       first use)
``zenoti_recorder``         function   the ``Recorder`` that is
                                       ``zenoti_handler_context.publish``
``zenoti_handler_context``  function   a ``Context``: a real ``ZenotiClient`` talking to the
                                       sandbox, ``zenoti_recorder`` as ``publish``, a structlog
                                       logger (async: it needs pytest-asyncio, as the tests of
                                       an async handler do)
``zenoti_event_of``         function   ``processor.testing.event_of``: a webhook body as the
                                       ``Event`` the worker would give the handler
==========================  =========  ==========================================================

Each name starts with ``zenoti_``: the plugin is loaded in every pytest run wherever
zenoti-events is installed, and its fixtures must not take names a project's own would.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from processor.handler import Context
    from processor.testing.recorder import Recorder
    from processor.testing.sandbox import ZenotiSandbox

_ASYNC = "zenoti_handler_context"  # the async fixture: made and registered by pytest_configure


@pytest.fixture(scope="session")
def zenoti_sandbox() -> Iterator[ZenotiSandbox]:
    """The sandbox Zenoti of this test session, stopped at its end."""
    from processor.testing.sandbox import ZenotiSandbox

    with ZenotiSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def zenoti_recorder() -> Recorder:
    """What the handler published through ``zenoti_handler_context``."""
    from processor.testing.recorder import Recorder

    return Recorder()


@pytest.fixture
def zenoti_event_of() -> Callable[..., Any]:
    """``processor.testing.event_of``, for tests that would rather not import it."""
    from processor.testing.events import event_of

    return event_of


async def _handler_context(zenoti_sandbox: ZenotiSandbox,
                           zenoti_recorder: Recorder) -> AsyncIterator[Context]:
    """A ``Context`` on the session's sandbox, publishing into ``zenoti_recorder``."""
    from processor.testing.context import make_context

    async with make_context(sandbox=zenoti_sandbox, recorder=zenoti_recorder) as ctx:
        yield ctx


def pytest_configure(config: pytest.Config) -> None:
    """Register the async fixture, in a plugin of its own made now rather than at load: it
    needs pytest-asyncio, imported here (pytest has usually loaded it by now, as a plugin)."""
    fixtures = types.ModuleType(f"{__name__}.{_ASYNC}")
    setattr(fixtures, _ASYNC, _async_fixture(_handler_context))
    config.pluginmanager.register(fixtures, fixtures.__name__)


def _async_fixture(function: Callable[..., AsyncIterator[Any]]) -> Any:
    """``function`` as pytest-asyncio's fixture (in its strict mode too); without
    pytest-asyncio, a fixture that fails saying what to install."""
    try:
        import pytest_asyncio
    except ImportError:
        def missing() -> None:
            pytest.fail(f"the {_ASYNC} fixture needs pytest-asyncio: pip install pytest-asyncio")

        return pytest.fixture(name=_ASYNC)(missing)
    return pytest_asyncio.fixture(name=_ASYNC)(function)
