"""``zenoti-events schemas`` and ``zenoti-events asyncapi``: what they print and write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from processor.cli import main

COMMITTED = Path(__file__).parents[2] / "schemas" / "json"


def test_schemas_prints_every_installed_schema_by_its_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schemas"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert "urn:zenoti-events:schema:guest.membership.frozen:v1" in printed
    assert "urn:zenoti-events:input:package-status" in printed
    assert all(schema["$id"] == key for key, schema in printed.items())


def test_schemas_built_in_out_writes_the_committed_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "--built-in", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in COMMITTED.glob("*.json"))
    assert all((tmp_path / n).read_text() == (COMMITTED / n).read_text() for n in written)
    assert len(capsys.readouterr().out.splitlines()) == len(written)


def test_asyncapi_writes_the_document_to_a_file_or_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "asyncapi.json"
    assert main(["asyncapi", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert (written["asyncapi"], written["info"]["title"]) == ("3.0.0", "zenoti-events")
    capsys.readouterr()
    assert main(["asyncapi"]) == 0
    assert json.loads(capsys.readouterr().out) == written
