"""``kvscale-adapter``: flags in the Kubernetes apiserver's vocabulary, each with an env twin.

Every flag ``--some-flag`` can also be set as ``KVSCALE_ADAPTER_SOME_FLAG`` (the Helm chart
uses those) or as the key ``some_flag`` of ``--config FILE``; a flag on the command line wins.
The fields, their documentation and validation are in ``adapter.settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from adapter.settings import COMMAND, SettingsError, load_settings
from exporter.contract.settings import parser as _parser

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    return _parser(COMMAND)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings(argv, os.environ)
    except SettingsError as exc:
        print(f"kvscale-adapter: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from adapter.auth import AuthConfigError  # imported late: --help stays fast
    from adapter.inventory import InventoryError
    from adapter.runner import run
    from adapter.tls import TLSConfigError

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0
    except (SettingsError, AuthConfigError, TLSConfigError, InventoryError, OSError) as exc:
        # Startup problems (files, flags, cluster access): one clear line, no traceback.
        print(f"kvscale-adapter: cannot start: {exc}", file=sys.stderr)
        return 2
    return 0
