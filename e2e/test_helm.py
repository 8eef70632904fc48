"""The Helm chart against the real kube-apiserver (DESIGN §8, issue #5).

* ``helm lint --strict`` is clean for the default values and for variants;
* every object ``helm template`` renders (CRDs included) passes a server-side
  dry run: the API server validates each one against its schema;
* ``helm install`` into a fresh namespace creates every object, and
  ``helm uninstall`` removes all of them except the CRDs (docs/install.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_testkit import CHART, helm, manifest_objects, object_exists, values_file, wait_until

from cluster.harness import Cluster

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "url-mode": {"webhook": {"url": "https://127.0.0.1:9443"}},
    "ha-namespaced-policies": {
        "operator": {"replicas": 3, "watchNamespaces": ["team-a", "team-b"]},
        "networkPolicy": {"enabled": True},
        "sidecar": {"resources": {"limits": {"cpu": 1, "memory": None}}},
    },
    "existing-secret": {
        "certificates": {"mode": "secret", "existingSecret": "my-tls", "caBundle": "Zm9v"}
    },
    "no-webhook": {"webhook": {"enabled": False}, "podDisruptionBudget": {"enabled": False}},
}


def render(cluster: Cluster, tmp: Path, namespace: str, values: dict[str, Any]) -> str:
    return helm(
        cluster,
        "template",
        "e2e",
        str(CHART),
        "-n",
        namespace,
        "--include-crds",
        "-f",
        values_file(tmp, values),
    ).stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_lint_is_clean(cluster: Cluster, tmp_path: Path, variant: str) -> None:
    out = helm(
        cluster, "lint", "--strict", str(CHART), "-f", values_file(tmp_path, VARIANTS[variant])
    )
    assert "0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_objects_pass_server_side_validation(
    cluster: Cluster, tmp_path: Path, namespace: str, variant: str
) -> None:
    rendered = render(cluster, tmp_path, namespace, VARIANTS[variant])
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert "CustomResourceDefinition" in kinds and "Deployment" in kinds
    for ns in VARIANTS[variant].get("operator", {}).get("watchNamespaces", []):
        cluster.kubectl("create", "namespace", ns, check=False)
    out = cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=rendered, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(
        [d for d in yaml.safe_load_all(rendered) if d]
    )


def test_optional_objects_render(cluster: Cluster, tmp_path: Path) -> None:
    """ServiceMonitor and cert-manager need CRDs this cluster lacks: render-only checks."""
    values = {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "certificates": {"mode": "certManager", "certManager": {"issuerRef": {"name": "ca"}}},
    }
    docs = [d for d in yaml.safe_load_all(render(cluster, tmp_path, "sw", values)) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "metrics"
    cert = by_kind["Certificate"]["spec"]
    assert "e2e-switchman-webhook.sw.svc" in cert["dnsNames"]
    mwc = by_kind["MutatingWebhookConfiguration"]
    assert mwc["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "sw/e2e-switchman"


def test_schema_refuses_bad_values(cluster: Cluster, tmp_path: Path) -> None:
    bad = {"webhook": {"failurePolicy": {"pod": "Sometimes"}}, "operator": {"replica": 2}}
    out = helm(
        cluster, "template", "e2e", str(CHART), "-f", values_file(tmp_path, bad), check=False
    )
    assert out.returncode != 0
    assert "value must be one of 'Ignore', 'Fail'" in out.stderr
    assert "additional properties 'replica' not allowed" in out.stderr


def test_install_then_uninstall_leaves_only_the_crds(
    cluster: Cluster, tmp_path: Path, namespace: str
) -> None:
    release = f"sm-{secrets.token_hex(3)}"
    helm(cluster, "install", release, str(CHART), "-n", namespace, "--timeout", "60s")
    objects = manifest_objects(cluster, release, namespace)
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    missing = [o["metadata"]["name"] for o in objects if not object_exists(cluster, o, namespace)]
    assert missing == []
    status = helm(cluster, "status", release, "-n", namespace).stdout
    assert "STATUS: deployed" in status and "switchman.io/inject" in status  # NOTES

    helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout", "60s")
    wait_until(
        lambda: not any(object_exists(cluster, o, namespace) for o in objects),
        30,
        "every object of the release to be deleted",
    )
    leftovers = cluster.kubectl(
        "get",
        "all,configmaps,secrets,roles,rolebindings,serviceaccounts,pdb",
        "-n",
        namespace,
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout
    assert leftovers.strip() == ""
    crds = cluster.kubectl("get", "crd", "-o", "name").stdout
    for plural in ("modelpools", "routingpolicies", "teambudgets"):
        assert f"customresourcedefinition.apiextensions.k8s.io/{plural}.switchman.io" in crds
