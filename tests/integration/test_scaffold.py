"""``zenoti-events new-handler``: a plugin package whose own tests pass at once, on the kit.

The generated package is made importable through ``PYTHONPATH`` (nothing is installed); its
tests run in a process of their own, with their own pytest settings, as its author would run
them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from string import Template
from typing import Any

import pytest

import processor.dev.scaffold as scaffold_module
from processor.cli import main
from processor.dev.scaffold import Names, scaffold

NAME = "loyalty-points"
PACKAGE = "zenoti_events_loyalty_points"
GUIDE = Path(__file__).parents[2] / "docs" / "writing-handlers.md"


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in ``root``, with the generated package importable."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=180)


@pytest.fixture
def scaffolded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["new-handler", NAME, "--dir", str(tmp_path)]) == 0
    root = tmp_path / f"zenoti-events-{NAME}"
    assert f"created {root}" in capsys.readouterr().out
    return root


def test_the_scaffolded_package_passes_its_own_tests_at_once(scaffolded: Path) -> None:
    result = run(scaffolded, "-m", "pytest", "-p", "no:cacheprovider", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_entry_point_is_declared_and_loads_as_a_checked_handler(scaffolded: Path) -> None:
    project = tomllib.loads((scaffolded / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["zenoti_events.handlers"]
    assert declared == {NAME: f"{PACKAGE}.handler:LoyaltyPoints"}
    script = ("from importlib.metadata import EntryPoint; from processor.worker.plugins import "
              f"load; (h,) = load([EntryPoint({NAME!r}, {declared[NAME]!r}, "
              "'zenoti_events.handlers')]); print(h.name, h.cls.event_types)")
    result = run(scaffolded, "-c", script)
    assert result.stdout.strip() == f"{NAME} ('Guestpass.redeemed',)", result.stderr


def test_the_scaffolded_code_passes_the_projects_linters(scaffolded: Path) -> None:
    result = run(scaffolded, "-m", "ruff", "check", "--isolated", "--line-length", "100",
                 "--select", "E,F,W,I,B,UP,SIM,RUF,ASYNC,C90", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_guides_worked_example_is_what_the_scaffold_writes(scaffolded: Path) -> None:
    example = GUIDE.read_text().split("## A worked example", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", example, re.DOTALL)
    written = "".join(path.read_text() for path in scaffolded.rglob("*.py"))
    assert len(blocks) == 4
    for block in blocks:
        assert block in written, block


@pytest.mark.parametrize("name", ["Loyalty", "loyalty--points", "loyalty-", "9lives",
                                  "loyalty_points", "a" * 64, "loyalty\n", "loyalty-points\n"])
def test_a_bad_name_is_refused_and_nothing_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-handler", name, "--dir", str(tmp_path)]) == 2
    assert "must be lower-case letters and digits" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["none", "true", "false"])
def test_a_name_whose_class_would_be_a_python_keyword_is_refused_and_nothing_written(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-handler", name, "--dir", str(tmp_path)]) == 2
    assert f"class {name.capitalize()!r}, a Python keyword" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["class", "import", "match", "type"])
def test_a_keyword_as_a_name_is_fine_when_what_it_makes_is_not_one(
    name: str, tmp_path: Path
) -> None:
    root = scaffold(name, tmp_path)
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")


def test_an_existing_package_is_never_overwritten(
    scaffolded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = scaffolded / PACKAGE / "handler.py"
    handler.write_text("# mine\n")
    assert main(["new-handler", NAME, "--dir", str(scaffolded.parent)]) == 2
    assert "exists already: nothing was written" in capsys.readouterr().err
    assert handler.read_text() == "# mine\n"


def test_a_name_gives_the_distribution_package_and_class_names() -> None:
    names = Names.of("gift-card2-sync")
    assert (names.dist, names.package, names.cls) == (
        "zenoti-events-gift-card2-sync", "zenoti_events_gift_card2_sync", "GiftCard2Sync")


@pytest.mark.parametrize("target", ["elsewhere", "missing"])
def test_a_symlink_where_the_package_goes_is_refused_and_never_followed(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"zenoti-events-{NAME}").symlink_to(tmp_path / target)
    assert main(["new-handler", NAME, "--dir", str(tmp_path)]) == 2
    assert "exists already: nothing was written" in capsys.readouterr().err
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert not (tmp_path / "missing").exists()


def test_a_file_that_appears_while_the_package_is_written_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = tmp_path / "victim.toml"
    victim.write_text("# mine\n")
    root = tmp_path / "into" / f"zenoti-events-{NAME}"

    class Planting(Template):
        """Renders a file after a symlink to ``victim`` was put where ``pyproject.toml`` goes
        (another process, between the checks and the writes)."""

        def substitute(self, *args: Any, **kwargs: Any) -> str:
            if not (root / "pyproject.toml").is_symlink():
                (root / "pyproject.toml").symlink_to(victim)
            return super().substitute(*args, **kwargs)

    monkeypatch.setattr(scaffold_module, "Template", Planting)
    assert main(["new-handler", NAME, "--dir", str(root.parent)]) == 2
    assert "nothing overwritten" in capsys.readouterr().err
    assert victim.read_text() == "# mine\n"
