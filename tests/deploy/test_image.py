"""The image's entrypoints start. No Docker engine runs here, so the Dockerfile's build is
replayed on this machine: its build context (exactly the files it COPYs) is installed into a
fresh virtual environment (the Dockerfile installs the lock's distributions, then the project
with --no-deps: test_lockfile.py installs the lock alone), and the entrypoint `zenoti-events`
then runs each subcommand the deployments use."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.common import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SUBCOMMANDS = ("ingress", "worker", "sandbox", "simulate", "topology", "tap", "dlq", "handlers")


def _run(*argv: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600,
                          **kwargs)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `bin` folder of an environment built as the image's final stage is."""
    work = tmp_path_factory.mktemp("image")
    context = work / "src"
    context.mkdir()
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.MULTILINE):
        *sources, _ = line.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(origin, context / source,
                                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(origin, context / source)
    # The image's environment: the lock's distributions (test_lockfile.py installs exactly
    # those from PyPI), then the project with --no-deps, copied whole into the final stage.
    assert "pip install --require-hashes --no-deps -r requirements.lock" in text
    assert "pip install --no-deps ." in text
    assert "COPY --from=builder /opt/zenoti-events /opt/zenoti-events" in text
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    # here the dependencies come from this machine's index, as pip resolves them
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", ".", cwd=context)
    return venv / "bin"


def _env() -> dict[str, str]:
    # Nothing of this checkout leaks in: no PYTHONPATH, run from an empty folder.
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTHON", "ZENOTI_EVENTS_", "VIRTUAL_ENV"))} | {
        "PYTHONDONTWRITEBYTECODE": "1"}


def test_the_entrypoint_starts(image: Path, tmp_path: Path) -> None:
    done = _run(image / "zenoti-events", "--help", cwd=tmp_path, env=_env())
    for subcommand in SUBCOMMANDS:
        assert subcommand in done.stdout


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_each_subcommand_starts(image: Path, tmp_path: Path, subcommand: str) -> None:
    _run(image / "zenoti-events", subcommand, "--help", cwd=tmp_path, env=_env())


def test_the_image_finds_its_handlers_and_not_this_checkout(image: Path, tmp_path: Path) -> None:
    done = _run(image / "zenoti-events", "handlers", cwd=tmp_path, env=_env())
    names = {line.split("\t")[0] for line in done.stdout.splitlines()}
    assert names == {"membership-freeze", "guestpass-redeemed", "package-status"}
    where = _run(image / "python", "-c", "import processor; print(processor.__file__)",
                 cwd=tmp_path, env=_env())
    assert str(ROOT) not in where.stdout and "site-packages" in where.stdout
