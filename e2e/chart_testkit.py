"""Helpers of the chart and injection e2e tests: helm against the test cluster, waits."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cluster.harness import REPO, Cluster

CHART = REPO / "charts" / "switchman"


def helm(
    cluster: Cluster, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [cluster.bin("helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"HOME": str(cluster.workdir), "PATH": "/usr/bin:/bin"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def values_file(tmp: Path, values: dict[str, Any]) -> str:
    path = tmp / f"values-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def manifest_objects(cluster: Cluster, release: str, namespace: str) -> list[dict[str, Any]]:
    out = helm(cluster, "get", "manifest", release, "-n", namespace).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def object_exists(cluster: Cluster, obj: dict[str, Any], namespace: str) -> bool:
    meta = obj["metadata"]
    group = obj["apiVersion"].rpartition("/")[0]
    resource = obj["kind"].lower() + (f".{group}" if group else "")
    args = ["get", resource, meta["name"], "-o", "name"]
    if obj["kind"] not in CLUSTER_SCOPED:
        args += ["-n", meta.get("namespace", namespace)]
    return cluster.kubectl(*args, check=False).returncode == 0


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def wait_until(cond: Callable[[], Any], within: float, what: str, step: float = 0.1) -> Any:
    for _ in range(int(within / step) + 1):
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
