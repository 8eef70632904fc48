"""Golden files of the injection pipeline: golden/X.yaml (a Pod) → golden/X.yaml.injected.

X.yaml.injected is the pod after the webhook's JSON patch is applied (what the
API server stores), preceded by the decision and any warnings as comments; a
refused pod shows the message. The template is the chart's own file.

Refresh with ``SWITCHMAN_REFRESH_GOLDEN=1 .venv/bin/pytest tests/injection``;
a case without output, or an output without a case, fails.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from injection_testkit import (
    LABELLED,
    OPERATOR_CA,
    OPERATOR_NAMESPACE,
    VALUES,
    apply_patch,
    chart_template,
)

from switchman_operator.injection import Outcome, inject

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
REFRESH = os.environ.get("SWITCHMAN_REFRESH_GOLDEN") == "1"


def run(pod: dict[str, Any]) -> Outcome:
    namespace = pod["metadata"].get("namespace", "apps")
    return inject(
        pod,
        namespace,
        namespace_enabled=namespace in LABELLED,
        template=chart_template(),
        values=VALUES,
        operator_ca=OPERATOR_CA,
        operator_namespace=OPERATOR_NAMESPACE,
    )


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the CA PEM) as literal blocks, readable in a diff."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_case(case: str) -> str:
    pod = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    outcome = run(pod)
    if not outcome.allowed:
        return f"# denied: {outcome.message}\n"
    lines = [f"# {'injected' if outcome.injected else 'unchanged'}: {outcome.message}"]
    lines += [f"# warning: {w}" for w in outcome.warnings]
    stored = apply_patch(pod, outcome.patch)
    assert stored == (outcome.pod or pod)
    body = yaml.dump(stored, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(lines) + "\n" + body


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected = GOLDEN / f"{case}.yaml.injected"
    got = render_case(case)
    if REFRESH:
        expected.write_text(got)
    assert expected.exists(), (
        f"no golden output for {case}; refresh with SWITCHMAN_REFRESH_GOLDEN=1"
    )
    assert got == expected.read_text(), f"{case} changed; refresh with SWITCHMAN_REFRESH_GOLDEN=1"


def test_no_stale_golden_files() -> None:
    outputs = {p.name.removesuffix(".yaml.injected") for p in GOLDEN.glob("*.yaml.injected")}
    assert outputs == set(CASES), f"stale outputs: {sorted(outputs - set(CASES))}"
    assert len(CASES) >= 10


@pytest.mark.parametrize("case", CASES)
def test_injecting_twice_changes_nothing(case: str) -> None:
    pod = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    first = run(pod)
    if not first.allowed:  # refused pods are never stored; refusing is deterministic
        assert run(pod).message == first.message
        return
    stored = apply_patch(pod, first.patch)
    second = run(stored)
    assert second.allowed
    assert second.patch == []
