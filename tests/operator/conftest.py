"""Fixtures of the operator tests; helpers live in operator_testkit (importable by name)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from operator_testkit import Env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path)
    await e.start()
    yield e
    if e.cp is not None:
        await e.cp.stop(0)
