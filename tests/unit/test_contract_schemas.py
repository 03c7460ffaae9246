"""The JSON Schemas under schemas/json/: generated from the models, never drifting from them,
valid 2020-12 schemas, and what the handlers really publish validates against them."""

from __future__ import annotations

import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from handlers.guestpass_redeemed import GuestpassRedeemed
from handlers.membership_freeze import MembershipFreeze
from handlers.package_status import PackageStatus
from processor.contract import json_schemas
from processor.handler import Context, Handler
from processor.worker.plugins import discover
from schemas.enriched import MembershipFrozen, Output
from tests.unit.test_handlers import (  # the handlers' own fake Zenoti and context
    GUEST,
    HOME,
    FakeZenoti,
    Published,
    ctx,
    event_of,
    membership_item,
    published,
    zenoti,
)

__all__ = ["ctx", "published", "zenoti"]  # fixtures, used by name

COMMITTED = Path(__file__).parents[2] / "schemas" / "json"
SAMPLES = Path(__file__).parents[1] / "fixtures" / "samples"
REGENERATE = "zenoti-events schemas --built-in --out schemas/json"
BUILT_IN: list[type[Handler]] = [MembershipFreeze, GuestpassRedeemed, PackageStatus]


def committed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((COMMITTED / name).read_text(encoding="utf-8"))
    return loaded


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def test_the_committed_schemas_are_those_the_built_in_models_generate() -> None:
    generated = json_schemas.generate(json_schemas.built_in(h.cls for h in discover()))
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in COMMITTED.glob("*.json")}
    assert sorted(on_disk) == sorted(generated), (
        f"schemas/json/ names other files than the built-in handlers generate: run `{REGENERATE}`"
        " (and delete the files no longer generated)")
    for name, schema in generated.items():
        assert on_disk[name] == json_schemas.text(schema), (
            f"schemas/json/{name} differs from its model: run `{REGENERATE}` and commit it")


def test_the_committed_schemas_ship_in_the_package() -> None:
    project = tomllib.loads((COMMITTED.parents[1] / "pyproject.toml").read_text())
    assert "json/*.json" in project["tool"]["setuptools"]["package-data"]["schemas"]
    shipped = files("schemas").joinpath("json", "output.guest.membership.frozen.v1.json")
    assert json.loads(shipped.read_text())["$id"].endswith("guest.membership.frozen:v1")


def test_a_changed_model_is_drift() -> None:
    class Changed(MembershipFrozen):
        extra_field: int = 0

    generated = json_schemas.text(json_schemas.output_schema(Changed))
    assert generated != (COMMITTED / "output.guest.membership.frozen.v1.json").read_text()


@pytest.mark.parametrize("name", sorted(p.name for p in COMMITTED.glob("*.json")))
def test_each_committed_schema_is_a_valid_2020_12_schema_with_a_stable_id(name: str) -> None:
    schema = committed(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    kind = name.split(".")[0]
    assert schema["$id"].startswith({"input": "urn:zenoti-events:input:",
                                     "output": "urn:zenoti-events:schema:"}[kind])


def test_an_outputs_id_names_its_event_and_version_and_pins_its_schema_version() -> None:
    class FrozenV2(MembershipFrozen):
        version: ClassVar[int] = 2

    schema = json_schemas.output_schema(FrozenV2)
    assert schema["$id"] == "urn:zenoti-events:schema:guest.membership.frozen:v2"
    assert schema["properties"]["schema_version"]["const"] == 2
    assert "schema_version" in schema["required"]
    assert json_schemas.output_file(FrozenV2) == "output.guest.membership.frozen.v2.json"


def test_a_body_of_another_version_is_refused_by_the_schema() -> None:
    validator = Draft202012Validator(committed("output.guest.membership.frozen.v1.json"))
    body = {"tenant": "t", "event_id": "e", "event_type": "x", "handler": "h",
            "guest": {"id": "g"}, "membership": {"user_membership_id": "m"}}
    assert not validator.is_valid(body)  # no schema_version
    assert not validator.is_valid({**body, "schema_version": 2})
    assert validator.is_valid({**body, "schema_version": 1})


def envelope(data: dict[str, Any], event_type: str) -> dict[str, Any]:
    return {**sample("envelope-reference.json"), "event_type": event_type, "data": data}


CASES = [
    (MembershipFreeze, "membership-freeze.data.json"),
    (GuestpassRedeemed, "guestpass-redemption.data.json"),
    (PackageStatus, "guest-package-status-update.data.json"),
]


@pytest.mark.parametrize(("handler", "name"), CASES)
async def test_the_vendors_samples_and_what_the_handlers_make_of_them_validate(
    handler: type[Handler], name: str, ctx: Context, zenoti: FakeZenoti, published: Published
) -> None:
    data = sample(name)
    body = envelope(data, handler.event_types[0])
    Draft202012Validator(committed(f"input.{handler.name}.json")).validate(body)
    if handler is GuestpassRedeemed:  # the vendor's membership, listed at the guest's center
        zenoti.memberships[(GUEST, HOME)].append(membership_item(data["user_membership_id"]))
    await handler().handle(event_of(handler(), handler.schema.model_validate(data)), ctx)
    routing_key, model = published.only()
    (output,) = getattr(handler, "outputs")  # noqa: B009
    assert routing_key == output.routing_key()
    schema = committed(json_schemas.output_file(output))
    Draft202012Validator(schema).validate(json.loads(model.model_dump_json()))


def test_an_input_schema_refuses_data_the_handler_refuses() -> None:
    validator = Draft202012Validator(committed("input.membership-freeze.json"))
    data = sample("membership-freeze.data.json")
    del data["center"]
    assert not validator.is_valid(envelope(data, "Guest.Membership.Freeze"))


def test_an_output_two_handlers_declare_is_generated_once() -> None:
    class Shared(Output):
        event_name: ClassVar[str] = "test.shared"

    def declaring(name: str) -> type[Handler]:
        attrs = {"name": name, "event_types": ("T.X",), "schema": BaseModel,
                 "outputs": (Shared,)}
        made: type[Handler] = type(name, (MembershipFreeze,), attrs)
        return made

    assert sorted(json_schemas.generate([declaring("a"), declaring("b")])) == [
        "input.a.json", "input.b.json", "output.test.shared.v1.json"]
