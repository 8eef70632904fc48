"""Smoke test of `make demo`: examples/demo.py end to end on a throwaway cluster.

The demo is the product's front door; this runs it once as a user would (a
subprocess), in its own cluster directory so .cluster/ is never touched, and
checks that its output shows an injected sidecar, requests routed through it
and a non-zero spend in the TeamBudget.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cluster.harness import REPO, Cluster


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    try:
        proc = subprocess.run(
            [sys.executable, str(REPO / "examples" / "demo.py"), "--dir", str(workdir)],
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        if (workdir / "state.json").exists():
            Cluster.load(workdir).stop()
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    # The webhook injected the sidecar into the Deployment's pod.
    assert re.search(r"switchman-proxy\s+Always\s+app\s+injected", out), out
    # Four requests routed by the sidecar: the plain and the premium rule's.
    assert re.search(r"^plain\s+\S+\s+openai\s+strategy:balanced\s+0\.\d{8}", out, re.M), out
    assert re.search(r"^x-tier: premium\s+claude-sonnet\s+anthropic\s+rule:premium-tier", out, re.M)
    # PII: the provider saw a placeholder, the app got its e-mail address back.
    received = re.search(r"^provider received: (.*)$", out, re.M)
    assert received and "jane.doe@example.com" not in received.group(1)
    assert "app got back:      'echo: Please e-mail the invoice to jane.doe@example.com" in out
    # The budget counted exactly this run's requests (a fresh cluster: nothing before).
    spent = re.search(r"^spentMicros (\d+) = 0 \(before this run\) \+ (\d+)", out, re.M)
    assert spent and int(spent.group(1)) == int(spent.group(2)) > 0, out
    assert re.search(
        r"^checkout-api-\S+\.checkout\s+checkout\s+checkout/checkout-api\s+SYNCED", out, re.M
    )
    assert str(REPO / ".cluster") not in out
