"""``zenoti-events new-handler NAME``: a new outside handler plugin, whose test passes at once.

Writes ``DIR/zenoti-events-NAME/`` (``DIR`` defaults to the current directory), a package named
``zenoti_events_<name>`` (hyphens as underscores: the prefix keeps it from shadowing any other
module)::

    pyproject.toml         the distribution; its handler in the ``zenoti_events.handlers`` group;
                           pytest settings for the kit's async fixtures
    README.md              install, test, run
    <package>/schema.py    the model of the webhook's ``data`` it reads, and of its output
    <package>/handler.py   the handler: ``Guestpass.redeemed`` -> ``<name>.enriched``, the guest
                           read through ``ctx.zenoti``
    tests/test_handler.py  its tests on the kit (``processor.testing``): the worker's checks, an
                           enrichment over HTTP from the sandbox Zenoti, a dead-lettered event

A template to change, not a framework: it imports only the ``processor`` root and the kit.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import processor.dev.scaffold_templates as templates

if TYPE_CHECKING:
    from processor.settings import Settings

_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")  # fullmatch: "$" would let "x\n" through
_MAX_NAME = 63  # the worker's limit: its queue is zenoti.h.<name>


@dataclass(frozen=True, slots=True)
class Names:
    """What a handler's name becomes: ``loyalty-points`` -> distribution
    ``zenoti-events-loyalty-points``, package ``zenoti_events_loyalty_points``, class
    ``LoyaltyPoints``."""

    name: str

    @classmethod
    def of(cls, name: str) -> Names:
        """``ValueError`` naming the rule unless ``name`` is lower-case words of letters and
        digits joined by single hyphens, starting with a letter, at most 63 characters, and
        what it makes is no Python keyword (``none`` would make the class ``None``)."""
        if not _NAME.fullmatch(name) or len(name) > _MAX_NAME:
            raise ValueError(f"handler name {name!r} must be lower-case letters and digits in "
                             f"words joined by '-', starting with a letter, at most {_MAX_NAME} "
                             "characters (e.g. loyalty-points)")
        names = cls(name)
        for kind, identifier in (("class", names.cls), ("package", names.package)):
            if keyword.iskeyword(identifier) or keyword.issoftkeyword(identifier):
                raise ValueError(f"handler name {name!r} would make the {kind} {identifier!r}, "
                                 "a Python keyword: choose another (e.g. with a second word)")
        return names

    @property
    def dist(self) -> str:
        return f"zenoti-events-{self.name}"

    @property
    def package(self) -> str:
        return f"zenoti_events_{self.name.replace('-', '_')}"

    @property
    def cls(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-"))


def scaffold(name: str, into: Path) -> Path:
    """Write the plugin package of handler ``name`` into ``into/zenoti-events-<name>`` and
    return that directory. ``ValueError`` for a bad name, ``FileExistsError`` if anything is
    where the package goes, even a dangling symlink.

    Nothing is ever overwritten, even by a race: the directory and each one inside it is made
    new (``mkdir`` without ``exist_ok``), each file created exclusively (``"x"``: no symlink
    followed); a file that appears meanwhile stops the writing."""
    names = Names.of(name)
    root = into / names.dist
    into.mkdir(parents=True, exist_ok=True)
    try:
        root.mkdir()
    except FileExistsError:
        raise FileExistsError(f"{root} exists already: nothing was written") from None
    files = _files(names)
    values = {"name": names.name, "dist": names.dist, "package": names.package,
              "cls": names.cls}
    try:
        for folder in sorted({Path(relative).parent for relative in files} - {Path(".")}):
            (root / folder).mkdir()
        for relative, template in files.items():
            with (root / relative).open("x", encoding="utf-8") as file:
                file.write(Template(template).substitute(values))
    except FileExistsError as exc:
        raise FileExistsError(f"{exc.filename} appeared while {root} was being written: "
                              "stopped, nothing overwritten") from None
    return root


def _files(names: Names) -> dict[str, str]:
    return {
        "pyproject.toml": templates.PYPROJECT,
        "README.md": templates.README,
        f"{names.package}/__init__.py": templates.INIT,
        f"{names.package}/py.typed": "",
        f"{names.package}/schema.py": templates.SCHEMA,
        f"{names.package}/handler.py": templates.HANDLER,
        "tests/test_handler.py": templates.TEST,
    }


def add_parser(sub: Any) -> None:
    """Add ``new-handler NAME [--dir DIR]`` to the subcommands ``sub``."""
    parser = sub.add_parser("new-handler", help="scaffold an outside handler plugin package")
    parser.add_argument("name", metavar="NAME", help="the handler's name, e.g. loyalty-points")
    parser.add_argument("--dir", type=Path, default=Path("."), metavar="DIR",
                        help="where to create zenoti-events-NAME/ (default: here)")
    parser.set_defaults(command=_command)


def _command(args: argparse.Namespace, settings: Settings) -> int:
    """Scaffold, print what to do next; exit code 2 (nothing written) on a bad name or an
    existing directory."""
    try:
        root = scaffold(args.name, args.dir)
    except (ValueError, FileExistsError) as exc:
        print(f"zenoti-events new-handler: {exc}", file=sys.stderr)
        return 2
    print(f"created {root}\n"
          f"next: pip install -e '{root}[test]' && pytest {root}\n"
          f"then: zenoti-events handlers   (lists {args.name})")
    return 0
