"""Fixtures for end-to-end tests on the local control plane.

One real kube-apiserver (with etcd and kube-controller-manager) per test
session, in a temporary directory, with the Switchman CRDs installed; each test
gets its own random namespace (deleted afterwards).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_operator import World, make_world

from cluster.harness import REPO, Cluster

CRDS = REPO / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.start()
        c.kubectl("apply", "--server-side", "-f", str(CRDS))
        c.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
        yield c
    finally:
        c.stop()


@pytest.fixture
def kubeconfig_env(cluster: Cluster) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    # The ServiceAccount admission plugin needs the default SA before pods can
    # be created; kube-controller-manager creates it shortly after the namespace.
    cluster.wait_for(f"/api/v1/namespaces/{name}/serviceaccounts/default", timeout=30)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def world(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[World]:
    """An operator world: fake upstream, TLS files and the sample pool, policy and budget
    applied in a fresh namespace; operators and sidecars started by the test."""
    yield from make_world(cluster, namespace, tmp_path)
