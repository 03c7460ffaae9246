"""JSON Schema (2020-12) of each handler's input and output, generated from its models.

An output's schema is its model as published (pydantic's serialization mode: what a consumer
reads), its ``schema_version`` pinned by ``const``; its ``$id`` is
``urn:zenoti-events:schema:<event_name>:v<version>``, the CloudEvents ``dataschema`` of every
message of it. An input's schema is the webhook envelope with the handler's ``schema`` as its
``data``, ``$id`` ``urn:zenoti-events:input:<handler>``: Zenoti owns that shape, so it has no
version of ours. Files are named ``output.<event_name>.v<version>.json`` and
``input.<handler>.json``; the built-in handlers' are committed under ``schemas/json/``
(``zenoti-events schemas --built-in --out schemas/json`` writes them again).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, create_model

from processor.handler import Handler, outputs_of
from schemas.envelope import Envelope

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BUILT_IN_PACKAGE = "handlers"  # the distribution's own handlers live in this package

Schema = dict[str, Any]


def output_schema_id(output: type[BaseModel]) -> str:
    """The stable id of ``output``'s schema (an absolute URI: CloudEvents' ``dataschema``)."""
    name, version = getattr(output, "event_name"), getattr(output, "version")  # noqa: B009
    return f"urn:zenoti-events:schema:{name}:v{version}"


def input_schema_id(handler: type[Handler]) -> str:
    """The stable id of the schema of what ``handler``'s queue receives."""
    return f"urn:zenoti-events:input:{handler.name}"


def output_schema(output: type[BaseModel]) -> Schema:
    """``output`` as published, with ``$schema``, ``$id``, a title naming it and its version,
    and ``schema_version`` pinned to its version."""
    name, version = getattr(output, "event_name"), getattr(output, "version")  # noqa: B009
    body = output.model_json_schema(mode="serialization")
    pinned = body.get("properties", {}).get("schema_version")
    if pinned is not None:
        pinned["const"] = version
    return _document(output_schema_id(output), f"{name} v{version}", body)


def input_schema(handler: type[Handler]) -> Schema:
    """The envelope ``handler``'s queue receives, its ``data`` as ``handler.schema`` takes it."""
    model = create_model(f"{handler.schema.__name__}Envelope", __base__=Envelope,
                         __doc__=Envelope.__doc__, data=(handler.schema, ...))
    return _document(input_schema_id(handler), f"{handler.name} input",
                     model.model_json_schema(mode="validation"))


def _document(schema_id: str, title: str, body: Schema) -> Schema:
    return {"$schema": DIALECT, "$id": schema_id, "title": title,
            **{key: value for key, value in body.items() if key != "title"}}


def generate(handlers: Iterable[type[Handler]]) -> dict[str, Schema]:
    """Every schema of ``handlers`` by its file name, sorted: each input, each declared output
    (an output two handlers publish is written once)."""
    found: dict[str, Schema] = {}
    for handler in handlers:
        found[f"input.{handler.name}.json"] = input_schema(handler)
        for output in outputs_of(handler):
            found[output_file(output)] = output_schema(output)
    return dict(sorted(found.items()))


def output_file(output: type[BaseModel]) -> str:
    """The file name of ``output``'s schema."""
    name, version = getattr(output, "event_name"), getattr(output, "version")  # noqa: B009
    return f"output.{name}.v{version}.json"


def text(schema: Schema) -> str:
    """A schema as its file holds it: indented JSON, one final newline (stable across runs)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write(directory: Path, handlers: Iterable[type[Handler]]) -> list[Path]:
    """Write every schema of ``handlers`` into ``directory`` (made if missing); returns the
    paths written. Files of handlers or versions no longer installed are left as they are."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in generate(handlers).items():
        path = directory / name
        path.write_text(text(schema), encoding="utf-8")
        written.append(path)
    return written


def built_in(handlers: Iterable[type[Handler]]) -> list[type[Handler]]:
    """The handlers among ``handlers`` that zenoti-events itself ships."""
    return [h for h in handlers if h.__module__.split(".")[0] == BUILT_IN_PACKAGE]
