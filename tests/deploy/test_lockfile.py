"""The lock file the image installs (`requirements.lock`): it pins every runtime dependency of
pyproject.toml with hashes, and it installs on its own into a clean environment, as the
Dockerfile does it (`pip install --require-hashes --no-deps -r requirements.lock`, then the
project with `--no-deps`), with `pip check` content and the entrypoint importable. The install
needs PyPI: skipped here when it does not answer, failed under CI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import missing
from tests.deploy.common import DEPLOY, ROOT

LOCK = ROOT / "requirements.lock"
INSTALL = "pip install --require-hashes --no-deps -r requirements.lock"
# The image: Linux, CPython (uvloop's marker).
IMAGE_PLATFORM = {"sys_platform": "linux", "platform_python_implementation": "CPython"}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)", re.MULTILINE)


def locked() -> dict[str, str]:
    """Each locked distribution's canonical name and version."""
    return {canonicalize_name(m["name"]): m["version"] for m in _PIN.finditer(LOCK.read_text())}


def runtime_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def test_the_lock_pins_every_runtime_dependency_in_range() -> None:
    pins = locked()
    for requirement in runtime_dependencies():
        if requirement.marker and not requirement.marker.evaluate(IMAGE_PLATFORM):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: regenerate it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{requirement}: the lock pins {pins[name]}")


def test_every_locked_distribution_has_hashes_and_the_header_says_how() -> None:
    text = LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned = [e for e in entries if _PIN.match(e)]
    assert len(pinned) == len(locked()) > 10
    for entry in pinned:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
    assert "pip-compile --generate-hashes" in text.split("\n\n")[0]
    assert INSTALL in (DEPLOY / "docker" / "Dockerfile").read_text()


def _pypi_answers() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=10) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _clean_env() -> dict[str, str]:
    """PyPI only: no local index, find-links or constraints of this machine's pip config."""
    kept = {k: v for k, v in os.environ.items()
            if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    cert = {"PIP_CERT": os.environ["PIP_CERT"]} if "PIP_CERT" in os.environ else {}
    return {**kept, **cert, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=_clean_env())
    assert done.returncode == 0, f"{argv}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_lock_installs_alone_into_a_clean_environment(tmp_path: Path) -> None:
    if not _pypi_answers():
        missing("PyPI does not answer: the lock file cannot be installed")
    context = tmp_path / "src"  # the Dockerfile's build context: what it COPYs
    context.mkdir()
    for name in ("requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    for package in ("processor", "handlers", "schemas"):
        shutil.copytree(ROOT / package, context / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(python, "-m", *INSTALL.split(), "--quiet", cwd=context)
    _run(python, "-m", "pip", "install", "--no-deps", "--quiet", ".", cwd=context)
    _run(python, "-m", "pip", "check", cwd=context)
    _run(python, "-c", "import processor.cli, handlers", cwd=tmp_path)
    installed = _run(python, "-m", "pip", "list", "--format=freeze", cwd=tmp_path)
    versions: dict[str, str] = {canonicalize_name(line.split("==")[0]): line.split("==")[1]
                for line in installed.splitlines() if "==" in line}
    for name, version in locked().items():
        assert versions.get(name) == version, name
