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
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

import processor.dev.scaffold_templates as templates

if TYPE_CHECKING:
    from processor.settings import Settings

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
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
        digits joined by single hyphens, starting with a letter, at most 63 characters."""
        if not _NAME.match(name) or len(name) > _MAX_NAME:
            raise ValueError(f"handler name {name!r} must be lower-case letters and digits in "
                             f"words joined by '-', starting with a letter, at most {_MAX_NAME} "
                             "characters (e.g. loyalty-points)")
        return cls(name)

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
    return that directory. ``ValueError`` for a bad name, ``FileExistsError`` if the directory
    exists (nothing is overwritten)."""
    names = Names.of(name)
    root = into / names.dist
    if root.exists():
        raise FileExistsError(f"{root} exists already: nothing was written")
    values = {"name": names.name, "dist": names.dist, "package": names.package,
              "cls": names.cls}
    for relative, template in _files(names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
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
