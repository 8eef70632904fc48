"""The compiled hot paths (native/, the ``switchman_native`` package), when installed.

One import guard for the sidecar: ``native`` is the compiled module, or None in a
build without cargo (``pip install .``), where every caller runs its Python
reference instead, with the same results, more slowly. ``COMPILED`` says which
(shown in ``/config_dump`` and logged at start).
"""

from __future__ import annotations

try:
    from switchman_native import _native as native
except ImportError:  # pragma: no cover - exercised by the fallback tests' subprocesses
    native = None  # type: ignore[assignment]

__all__ = ["COMPILED", "native"]

COMPILED = native is not None
