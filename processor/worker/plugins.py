"""Finding and checking handler plugins (entry-point group ``zenoti_events.handlers``).

Every entry point is loaded and checked before any is used; if one fails, start-up stops with a
``PluginError`` that lists every problem of every plugin at once (the pluggy way), never a
broken plugin printed and skipped.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from pydantic import BaseModel

from processor.errors import PluginError
from processor.handler import ENTRY_POINT_GROUP, Handler
from schemas.enriched import routing_key_of

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # fullmatch: "$" would let "x\n" through
# An output's event_name: a topic routing key without wildcards, and without a ".v<N>" end,
# which routing_key_of reserves for versions 2 and up.
_EVENT_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+){0,15}")
_VERSIONED = re.compile(r".*\.v[0-9]+")


@dataclass(frozen=True, slots=True)
class LoadedHandler:
    """A checked handler class and where it came from."""

    name: str
    cls: type[Handler]
    source: str  # "module:attr (distribution version)"


def discover(enabled: Sequence[str] | None = None) -> list[LoadedHandler]:
    """Load and check the installed handlers; only ``enabled`` ones if given."""
    return load(entry_points(group=ENTRY_POINT_GROUP), enabled)


def load(points: Iterable[EntryPoint], enabled: Sequence[str] | None = None) -> list[LoadedHandler]:
    """Check every entry point; raise ``PluginError`` listing all problems, else the handlers."""
    problems: list[str] = []
    loaded: dict[str, LoadedHandler] = {}
    for point in points:
        handler, found = _load_one(point)
        problems.extend(found)
        if handler is not None and handler.name in loaded:
            problems.append(f"{point.name}: handler name {handler.name!r} is registered twice")
        elif handler is not None:
            loaded[handler.name] = handler
    missing = sorted(set(enabled or ()) - loaded.keys())
    problems.extend(f"{name}: no installed handler of that name" for name in missing)
    if problems:
        raise PluginError(problems)
    return [h for n, h in sorted(loaded.items()) if not enabled or n in enabled]


def _load_one(point: EntryPoint) -> tuple[LoadedHandler | None, list[str]]:
    try:
        obj = point.load()
    except Exception as exc:  # any import-time failure of a plugin is reported, not raised
        return None, [f"{point.name}: cannot import {point.value}: {type(exc).__name__}: {exc}"]
    problems = [f"{point.name} ({point.value}): {p}" for p in check(obj, point.name)]
    if problems:
        return None, problems
    dist = f" ({point.dist.name} {point.dist.version})" if point.dist else ""
    return LoadedHandler(point.name, obj, f"{point.value}{dist}"), []


def check(obj: object, entry_name: str) -> list[str]:
    """Every way ``obj`` fails the handler contract (empty when it fulfils it)."""
    if not inspect.isclass(obj):
        return [f"is a {type(obj).__name__}, not a class"]
    return [
        *_check_name(obj, entry_name),
        *_check_event_types(obj),
        *_check_schema(obj),
        *_check_outputs(obj),
        *_check_handle(obj),
    ]


def _check_name(cls: type, entry_name: str) -> list[str]:
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return [f"name must be lower-case letters, digits and '-' (got {name!r})"]
    if name != entry_name:
        return [f"name {name!r} differs from its entry-point name {entry_name!r}"]
    return []


def _check_event_types(cls: type) -> list[str]:
    types = getattr(cls, "event_types", None)
    ok = isinstance(types, tuple) and types and all(isinstance(t, str) and t for t in types)
    return [] if ok else [f"event_types must be a non-empty tuple of strings (got {types!r})"]


def _check_schema(cls: type) -> list[str]:
    schema = getattr(cls, "schema", None)
    if inspect.isclass(schema) and issubclass(schema, BaseModel):
        return []
    return [f"schema must be a pydantic BaseModel subclass (got {schema!r})"]


def _check_outputs(cls: type) -> list[str]:
    """``outputs`` is optional (plugins made before it still load); declared, it is a
    non-empty tuple of output models, no two of one name and version."""
    if not hasattr(cls, "outputs"):
        return []
    outputs = getattr(cls, "outputs", None)
    if not isinstance(outputs, tuple) or not outputs:
        return [f"outputs must be a non-empty tuple of output models (got {outputs!r})"]
    problems: list[str] = []
    keys: list[str] = []  # one per name and version
    for output in outputs:
        found = _check_output(output)
        problems.extend(found)
        if not found:
            keys.append(routing_key_of(output))
    twice = sorted({key for key in keys if keys.count(key) > 1})
    problems.extend(f"two outputs are published as {key!r}: one name and version each"
                    for key in twice)
    return problems


def _check_output(output: object) -> list[str]:
    if not (inspect.isclass(output) and issubclass(output, BaseModel)):
        return [f"output {output!r} must be a pydantic BaseModel subclass"]
    name, version = getattr(output, "event_name", None), getattr(output, "version", None)
    problems: list[str] = []
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name) or _VERSIONED.fullmatch(name):
        problems.append(f"output {output.__name__}: event_name must be a routing key of "
                        f"lower-case words joined by '.', not ending in .v<N> (got {name!r})")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"output {output.__name__}: version must be an int from 1 "
                        f"(got {version!r})")
    if "schema_version" not in {*output.model_fields, *output.model_computed_fields}:
        problems.append(f"output {output.__name__}: its JSON must carry schema_version "
                        "(subclass schemas.enriched.Output)")
    return problems


def _check_handle(cls: type) -> list[str]:
    handle = getattr(cls, "handle", None)
    if not inspect.iscoroutinefunction(handle):
        return ["handle must be an async method: async def handle(self, event, ctx)"]
    if len(inspect.signature(handle).parameters) != 3:
        return ["handle must take exactly (self, event, ctx)"]
    try:
        cls()
    except Exception as exc:
        return [f"cannot be made without arguments: {type(exc).__name__}: {exc}"]
    return []
