"""The local control plane has what Switchman relies on (DESIGN §4, §8)."""

from __future__ import annotations

import json
from pathlib import Path

from cluster.harness import Cluster


def test_server_version_is_the_pinned_one(cluster: Cluster) -> None:
    pins_file = Path(__file__).parent / "cluster" / "pins.env"
    pins = dict(line.split("=", 1) for line in pins_file.read_text().split() if "=" in line)
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == pins["KUBERNETES_VERSION"]
    client_minor = int(version["clientVersion"]["minor"].rstrip("+"))
    assert abs(client_minor - int(version["serverVersion"]["minor"].rstrip("+"))) <= 1


def test_token_request_and_review_with_switchman_audience(cluster: Cluster, namespace: str) -> None:
    token = cluster.kubectl(
        "create", "token", "default", "-n", namespace, "--audience=switchman", "--duration=10m"
    ).stdout.strip()
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["switchman"]},
    }
    out = json.loads(
        cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout
    )
    assert out["status"]["authenticated"] is True
    assert out["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:default"
    # The same token is not valid for another audience.
    review["spec"]["audiences"] = ["someone-else"]
    out = json.loads(
        cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout
    )
    assert not out["status"].get("authenticated")


def test_rbac_is_enforced(cluster: Cluster, namespace: str) -> None:
    sa = f"system:serviceaccount:{namespace}:default"
    out = cluster.kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace, f"--as={sa}", check=False
    )
    assert out.stdout.strip() == "no"
    out = cluster.kubectl("auth", "can-i", "list", "secrets", "-n", namespace)
    assert out.stdout.strip() == "yes"


def test_pods_are_stored_without_a_kubelet(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
    got = json.loads(cluster.kubectl("get", "pod", "app", "-n", namespace, "-o", "json").stdout)
    # The ServiceAccount admission plugin ran: the default SA and its token volume are set.
    assert got["spec"]["serviceAccountName"] == "default"
    assert any(v["name"].startswith("kube-api-access") for v in got["spec"]["volumes"])
