"""Our ingress exactly as ``zenoti-events ingress`` runs it; ``--loop`` picks the event loop.

Settings come from the environment (``ZENOTI_EVENTS_*``) as in production.
"""

from __future__ import annotations

import argparse

from bench.apps import loop
from processor import cli, logs, wiring
from processor.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    loop.add_option(parser)
    loop.install(parser.parse_args().loop, ours=True)
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return cli.run_until_signalled(lambda stop: wiring.run_ingress(settings, stop))


if __name__ == "__main__":
    raise SystemExit(main())
