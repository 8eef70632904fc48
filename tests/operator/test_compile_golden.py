"""Golden tests of the compiler: golden/X.yaml (a pod plus manifests) -> golden/X.json.

Refresh with ``SWITCHMAN_REFRESH_GOLDEN=1 .venv/bin/pytest tests/operator``;
a case without output, or output without a case, fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from switchman_operator.compile import compile_route_table
from switchman_operator.resources import PodInfo
from switchman_operator.world import resources_from_bodies

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
REFRESH = os.environ.get("SWITCHMAN_REFRESH_GOLDEN") == "1"


def render(case: str) -> str:
    doc: dict[str, Any] = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    pod_doc = doc["pod"]
    pod = PodInfo(pod_doc["namespace"], pod_doc["name"], pod_doc.get("labels") or {})
    result = compile_route_table(pod, resources_from_bodies(doc["objects"], pod.namespace))
    out = {
        "policy": result.policy,
        "problems": [{"reason": p.reason, "message": p.message} for p in result.problems],
        "table": json_format.MessageToDict(result.table) if result.table else None,
    }
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected_file = GOLDEN / f"{case}.json"
    got = render(case)
    if REFRESH:
        expected_file.write_text(got)
    assert expected_file.exists(), (
        f"no golden output for {case}; refresh with SWITCHMAN_REFRESH_GOLDEN=1"
    )
    assert got == expected_file.read_text()


def test_no_stale_golden_files() -> None:
    outputs = {p.stem for p in GOLDEN.glob("*.json")}
    assert outputs == set(CASES), f"stale outputs: {sorted(outputs - set(CASES))}"
    assert len(CASES) >= 5
