"""The request path compiled with mypyc, used only when built from these sources.

``tools/build_compiled.py`` (run by ``make venv`` and the image build) compiles
the modules in ``MODULES`` with mypyc into ``<sys.prefix>/switchman-compiled``,
next to a stamp of the sources it compiled. The package (and each subpackage
holding a compiled module) puts that directory in front of its ``__path__``,
so ``import switchman_sidecar.pipeline`` loads the extension module, but only
when the stamp matches the ``.py`` files beside this one: after an edit, or
without a build, every module is the plain Python it always was. The Python
source is the only source; mypyc compiles the same code.

``SWITCHMAN_COMPILED=0`` turns the compiled modules off (the plain Python
runs); ``SWITCHMAN_COMPILED=<dir>`` uses another build directory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__all__ = ["ACTIVE", "BUILD_DIR", "MODULES", "default_dir", "extend", "is_current", "stamp"]

MODULES = (
    "adapters/base.py",
    "adapters/openai.py",
    "api_chat.py",
    "app.py",
    "deadlines.py",
    "eager.py",
    "http/server.py",
    "logbuf.py",
    "metrics.py",
    "pipeline.py",
    "resilience.py",
    "routing/router.py",
    "table.py",
    "usage.py",
)
"""The modules on the request path, relative to the package directory."""

STAMP_FILE = "STAMP"
_PACKAGE = Path(__file__).resolve().parent


def stamp(package: Path = _PACKAGE) -> str:
    """What a build is valid for: the compiled sources and the interpreter."""
    h = hashlib.sha256(sys.implementation.cache_tag.encode())
    for rel in MODULES:
        h.update(rel.encode() + b"\0")
        h.update((package / rel).read_bytes())
    return h.hexdigest()


def default_dir() -> Path:
    return Path(sys.prefix) / "switchman-compiled"


def is_current(root: Path, package: Path = _PACKAGE) -> bool:
    """Whether the build in ``root`` was made from ``package``'s sources as they are."""
    try:
        return (root / STAMP_FILE).read_text().strip() == stamp(package)
    except OSError:
        return False


def _build_dir() -> Path | None:
    setting = os.environ.get("SWITCHMAN_COMPILED", "")
    if setting == "0":
        return None
    root = Path(setting) if setting else default_dir()
    return root if is_current(root) else None


BUILD_DIR = _build_dir()
"""The build in use, or None: the plain Python runs."""
ACTIVE = BUILD_DIR is not None


def extend(path: list[str], subpackage: str = "") -> None:
    """Called by a package's ``__init__`` with its ``__path__``."""
    if BUILD_DIR is not None:
        path.insert(0, str(BUILD_DIR / "switchman_sidecar" / subpackage))
