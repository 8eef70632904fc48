"""The CEL extension without the ``cel`` package's command-line tool.

``cel/__init__.py`` (common-expression-language) imports its CLI module next to
the Rust extension, and the CLI pulls in typer, rich and pygments: ~400 modules
and ~26 MiB of resident memory in every sidecar, for nothing the sidecar uses.
A placeholder ``cel.cli`` in ``sys.modules`` lets the package import only the
extension and its small stdlib module (28 modules, ~5 MiB).
"""

from __future__ import annotations

import sys
import types

sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))

import cel  # noqa: E402  (after the placeholder, on purpose)

__all__ = ["cel"]
