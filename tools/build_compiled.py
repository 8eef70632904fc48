"""Compile the sidecar's request path with mypyc (see sidecar/switchman_sidecar/_compiled.py).

    python tools/build_compiled.py [--out DIR] [--force]

Writes the extension modules into DIR (default ``<sys.prefix>/switchman-compiled``)
with a stamp of the sources; the sidecar loads them only while the stamp
matches its ``.py`` files. Does nothing when the build is already current.
Needs mypy (it contains mypyc) and a C compiler at build time only: the
compiled modules need nothing beyond CPython at run time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sidecar" / "switchman_sidecar"
sys.path.insert(0, str(ROOT / "sidecar"))

from switchman_sidecar import _compiled  # noqa: E402


def build(out: Path) -> None:
    from mypyc.build import mypycify
    from setuptools import Distribution  # type: ignore[import-untyped]

    sources = [str(PACKAGE / rel) for rel in _compiled.MODULES]
    flags = ["--config-file", str(ROOT / "pyproject.toml")]
    work = Path(tempfile.mkdtemp(prefix="switchman-mypyc-"))
    staging = out.with_name(out.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)  # mypy_path in pyproject.toml is relative to the repository
        extensions = mypycify(
            [*flags, *sources], opt_level="3", group_name="switchman_sidecar.compiled"
        )
        dist = Distribution({"name": "switchman-compiled", "ext_modules": extensions})
        cmd = dist.get_command_obj("build_ext")
        cmd.build_lib = str(staging)
        cmd.build_temp = str(work / "temp")
        cmd.ensure_finalized()
        cmd.run()
    finally:
        os.chdir(cwd)
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # mypyc's generated C
        shutil.rmtree(work, ignore_errors=True)
    (staging / _compiled.STAMP_FILE).write_text(_compiled.stamp(PACKAGE) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=_compiled.default_dir())
    parser.add_argument("--force", action="store_true", help="rebuild even when current")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if _compiled.is_current(out, PACKAGE) and not args.force:
        return
    t0 = time.monotonic()
    build(out)
    n = len(_compiled.MODULES)
    print(f"compiled {n} sidecar modules with mypyc in {time.monotonic() - t0:.0f} s: {out}")


if __name__ == "__main__":
    main()
