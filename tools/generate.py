"""Regenerate every generated file, or check that none is stale.

* protobuf + gRPC Python code and type stubs beside protos/**/*.proto
* crds/*.yaml and charts/switchman/crds/*.yaml from switchman_operator.api

``python tools/generate.py`` writes them; ``--check`` writes into a temporary
directory, compares, and exits 1 listing every stale or missing file.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_PACKAGE = "switchman_protocol/v1"
CRD_DIRS = ("crds", "charts/switchman/crds")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generate_protos(out: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency, pinned in pyproject

    out.mkdir(parents=True, exist_ok=True)
    protos = sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *map(str, protos),
    ]
    # The mypy plugins are console scripts beside this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # protoc's plugins chat on stderr ("Writing mypy to ..."); keep it for failures.
    with tempfile.TemporaryFile() as err:
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            status = protoc.main(args)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        if status != 0:
            err.seek(0)
            sys.stderr.write(err.read().decode(errors="replace"))
            raise SystemExit("protoc failed")
    return sorted(p for p in (out / PROTO_PACKAGE).iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def generate_crds(out: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT / "operator"))
    from switchman_operator.crdgen import write_all

    return write_all(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail on stale generated files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        pairs: list[tuple[Path, Path]] = []
        for path in generate_protos(tmpdir / "protos"):
            pairs.append((path, PROTO_ROOT / PROTO_PACKAGE / path.name))
        for path in generate_crds(tmpdir / "crds"):
            pairs.extend((path, ROOT / d / path.name) for d in CRD_DIRS)
        # Anything generated-looking in the tree that we no longer generate is stale too.
        expected = {dest for _, dest in pairs}
        orphans = [
            p
            for p in (PROTO_ROOT / PROTO_PACKAGE).iterdir()
            if p.name.endswith(GENERATED_SUFFIXES) and p not in expected
        ]
        orphans += [
            p
            for d in CRD_DIRS
            if (ROOT / d).is_dir()
            for p in (ROOT / d).glob("switchman.io_*.yaml")
            if p not in expected
        ]
        stale = [
            dest
            for src, dest in pairs
            if not dest.exists() or not filecmp.cmp(src, dest, shallow=False)
        ]
        if args.check:
            for path in stale + orphans:
                print(f"stale generated file: {path.relative_to(ROOT)}", file=sys.stderr)
            if stale or orphans:
                print("run `make generate` and commit the result", file=sys.stderr)
                return 1
            return 0
        for src, dest in pairs:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        for path in orphans:
            path.unlink()
        for path in stale + orphans:
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
