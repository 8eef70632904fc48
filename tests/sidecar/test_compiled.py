"""The request path compiled with mypyc (switchman_sidecar/_compiled.py).

The test venv has the build (``make venv`` runs tools/build_compiled.py), so
the rest of the suite runs the compiled modules; these tests check that they
really are the ones loaded, that an edited source is never shadowed by a stale
build, that the plain Python still serves, and two mypyc pitfalls the type
checker does not see (a rebound exception name, reference cycles per request).
"""

from __future__ import annotations

import ast
import gc
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchman_sidecar import _compiled

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "sidecar" / "switchman_sidecar"


def _module_name(rel: str) -> str:
    return "switchman_sidecar." + rel.removesuffix(".py").replace("/", ".")


def test_the_request_path_runs_compiled() -> None:
    """No silent fallback in the test venv: every listed module is the extension."""
    if os.environ.get("SWITCHMAN_COMPILED") == "0":
        pytest.skip("SWITCHMAN_COMPILED=0: the plain Python was asked for")
    assert _compiled.ACTIVE, "no current build of the compiled modules: run `make venv`"
    for rel in _compiled.MODULES:
        module = importlib.import_module(_module_name(rel))
        assert module.__file__ is not None and module.__file__.endswith(".so"), module.__file__


def _probe(package_root: Path, build: str) -> list[str]:
    """In a fresh interpreter on ``package_root``: is the build used, and where
    does ``pipeline`` come from."""
    code = (
        "from switchman_sidecar import _compiled, pipeline;"
        "print(_compiled.ACTIVE); print(pipeline.__file__)"
    )
    env = {**os.environ, "SWITCHMAN_COMPILED": build}
    env["PYTHONPATH"] = os.pathsep.join([str(package_root), str(REPO / "protos")])
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_an_edited_source_is_not_shadowed_by_the_build(tmp_path: Path) -> None:
    """The build is used only while it was made from exactly these sources."""
    if not _compiled.ACTIVE or _compiled.BUILD_DIR is None:
        pytest.fail("no current build of the compiled modules: run `make venv`")
    build = str(_compiled.BUILD_DIR)
    copy = tmp_path / "switchman_sidecar"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    active, where = _probe(tmp_path, build)
    assert active == "True" and where.startswith(build), where
    edited = copy / "pipeline.py"
    edited.write_text(edited.read_text() + "\nEDITED = True\n")
    active, where = _probe(tmp_path, build)
    assert active == "False" and where == str(edited)
    assert _probe(tmp_path, "0")[0] == "False"  # and off when asked, whatever the stamp
    assert _probe(tmp_path, str(tmp_path / "nothing-built-here"))[0] == "False"


def test_the_plain_python_serves_the_sdk_tests() -> None:
    """A build without mypyc (or ``SWITCHMAN_COMPILED=0``) is the plain Python, which
    must keep passing: the OpenAI SDK tests, run again in a child with the
    compiled modules off."""
    env = {**os.environ, "SWITCHMAN_COMPILED": "0"}
    test = REPO / "tests" / "sidecar" / "test_openai_sdk.py"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and " failed" not in out.stdout


def test_no_exception_name_is_rebound_to_another_type() -> None:
    """mypyc gives a local variable the type of its first binding, so
    ``except A as exc`` then ``except B as exc`` in one function raises
    TypeError when B is not an A (mypy accepts it). Caught once in api_chat.relay."""
    found = []
    for rel in _compiled.MODULES:
        tree = ast.parse((PACKAGE / rel).read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first: dict[str, str] = {}
            handlers = [n for n in ast.walk(fn) if isinstance(n, ast.ExceptHandler) and n.name]
            for node in sorted(handlers, key=lambda n: n.lineno):  # source order
                if node.name:
                    kind = ast.unparse(node.type) if node.type is not None else "BaseException"
                    if first.setdefault(node.name, kind) not in (kind, "BaseException"):
                        found.append(f"{rel}:{node.lineno} {fn.name}: {node.name} ({kind})")
    assert not found, found


async def test_requests_leave_no_reference_cycles(make_sidecar: Any, fake: Any) -> None:
    """Compiled, a nested function and the frame it closes over refer to each other:
    ``Router.decide``'s closure once left a cycle per request (six objects, and
    collections on the request path: 46 of them per 3,000 requests instead of
    12). Whole answers, streams and a routing rule that reads the task kind leave
    nothing of ours for the collector, compiled or not."""
    from tests.sidecar.conftest import make_table

    table = make_table(fake.url)
    table["rules"] = [{"name": "code", "when": 'task == "code"', "route_to": "best"}]
    targets = [await make_sidecar(), await make_sidecar(table)]
    body = {"model": "best", "messages": [{"role": "user", "content": "write a python function"}]}

    clients = [httpx.AsyncClient(base_url=target.url) for target in targets]

    async def run(n: int) -> None:
        for client in clients:  # keep-alive: the connections outlive the requests
            for _ in range(n):
                whole = await client.post("/v1/chat/completions", json=body)
                assert whole.status_code == 200, whole.text
                streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
                assert streamed.status_code == 200 and b"[DONE]" in streamed.content

    try:
        await run(2)  # connections open, caches filled
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        await run(10)
        gc.collect()
        names = {f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        for client in clients:
            await client.aclose()
    ours = sorted(name for name in names if name.startswith("switchman"))
    assert not ours, ours
