"""The ``switchman`` command line.

Each command group lives in ``switchman_cli.commands.<name>`` and exposes
``register(subparsers)``; groups are imported only when present so that the
CLI starts fast and a missing optional dependency breaks only its own group.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

#: Command groups in help order.
GROUPS = ("proxy", "route", "router", "pii", "crd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchman", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        module_name = f"switchman_cli.commands.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
