"""Sidecar injection end to end: the chart in URL mode, the operator as a local process.

The chart is installed with ``webhook.url`` pointing at 127.0.0.1, so the real
kube-apiserver calls the webhook served by a local ``switchman-operator``
(SWITCHMAN_WEBHOOK_ENABLED) that reads the template and values the chart put
in its ConfigMap (written to files here, as the kubelet would mount them).
The operator makes its CA in the chart's Secret and patches the caBundle.
Then ``kubectl apply`` stores pods exactly as a cluster would.

The webhook's namespaceSelector gets one extra term (a per-test label) so
this cluster-wide webhook never touches pods of other tests.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from chart_testkit import (
    CHART,
    get_json,
    helm,
    manifest_objects,
    object_exists,
    values_file,
    wait_until,
)
from cryptography import x509

from cluster.harness import Cluster, free_port
from switchman_operator.kube import load_api_client
from switchman_operator.webhook.kubeapi import WebhookKube
from switchman_operator.webhook.serving import OperatorCertificates

BIN = Path(sys.executable).parent
E2E_LABEL = "switchman.io/e2e-injection"


@dataclass
class Injection:
    cluster: Cluster
    release: str
    operator_ns: str
    token: str
    grpc_port: int
    values_path: Path
    log: Path
    created: list[str]

    def namespace(self, *, labelled: bool) -> str:
        name = f"inj-{secrets.token_hex(4)}"
        self.cluster.kubectl("create", "namespace", name)
        self.created.append(name)
        labels = [f"{E2E_LABEL}={self.token}"]
        if labelled:
            labels.append("switchman.io/injection=enabled")
        self.cluster.kubectl("label", "namespace", name, *labels)
        self.cluster.wait_for(f"/api/v1/namespaces/{name}/serviceaccounts/default", timeout=30)
        return name

    def apply_pod(
        self, namespace: str, name: str, annotations: dict[str, str] | None = None, **spec: Any
    ) -> subprocess.CompletedProcess[str]:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}], **spec},
        }
        return self.cluster.kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        out: dict[str, Any] = get_json(self.cluster, "pod", name, "-n", namespace)
        return out


@pytest.fixture(scope="module")
def injection(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Injection]:
    """One release and one operator for the module (each test uses its own namespaces)."""
    tmp_path = tmp_path_factory.mktemp("injection")
    namespace = f"switchman-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", namespace)
    created = [namespace]
    token = secrets.token_hex(4)
    port, grpc_port, admin_port = free_port(), free_port(), free_port()
    release = "inj"
    # The operator namespace carries the test label too: only the chart's own
    # NotIn term keeps its pods out.
    cluster.kubectl("label", "namespace", namespace, f"{E2E_LABEL}={token}")
    values = {
        "webhook": {
            "url": f"https://127.0.0.1:{port}",
            "namespaceSelector": {
                "matchExpressions": [{"key": E2E_LABEL, "operator": "In", "values": [token]}]
            },
        },
    }
    helm(
        cluster,
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "-f",
        values_file(tmp_path, values),
    )
    objects = manifest_objects(cluster, release, namespace)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    mounted = tmp_path / "injection"
    mounted.mkdir()
    for key, text in config["data"].items():
        (mounted / key).write_text(text)
    mwc = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")["metadata"][
        "name"
    ]
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAMESPACE": namespace,
        "SWITCHMAN_NAMESPACES": namespace,
        "SWITCHMAN_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "SWITCHMAN_ADMIN_ADDRESS": f"127.0.0.1:{admin_port}",
        "SWITCHMAN_TLS_HOSTS": "localhost,127.0.0.1",
        "SWITCHMAN_WEBHOOK_ENABLED": "true",
        "SWITCHMAN_WEBHOOK_ADDRESS": f"127.0.0.1:{port}",
        "SWITCHMAN_WEBHOOK_TEMPLATE": str(mounted / "template.yaml"),
        "SWITCHMAN_WEBHOOK_VALUES": str(mounted / "values.json"),
        "SWITCHMAN_WEBHOOK_RELOAD_INTERVAL": "0.2",
        "SWITCHMAN_WEBHOOK_CA_SECRET": f"{namespace}/{release}-switchman-ca",
        "SWITCHMAN_WEBHOOK_HOSTS": "127.0.0.1",
        "SWITCHMAN_WEBHOOK_CONFIG": mwc,
    }
    log = tmp_path / "operator.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "switchman-operator")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "switchman-operator webhook=" in log.read_text() or proc.poll() is not None,
            60,
            "the operator's webhook to listen",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        wait_until(
            lambda: all(
                h["clientConfig"].get("caBundle")
                for h in get_json(cluster, "mutatingwebhookconfiguration", mwc)["webhooks"]
            ),
            30,
            "the caBundle patch",
        )
        yield Injection(
            cluster, release, namespace, token, grpc_port, mounted / "values.json", log, created
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", check=False)
        leftover = [o["kind"] for o in objects if object_exists(cluster, o, namespace)]
        for name in created:
            cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
        assert leftover == [], f"helm uninstall left {leftover}"


def test_annotated_pod_is_stored_with_the_sidecar(injection: Injection) -> None:
    ns = injection.namespace(labelled=False)
    out = injection.apply_pod(ns, "chat", {"switchman.io/inject": "true"})
    assert out.returncode == 0, out.stderr
    pod = injection.pod(ns, "chat")
    sidecar = pod["spec"]["initContainers"][0]
    assert sidecar["name"] == "switchman-proxy"
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    sc = sidecar["securityContext"]
    assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert (
        env["SWITCHMAN_OPERATOR_ADDRESS"]
        == f"{injection.release}-switchman.{injection.operator_ns}.svc:15010"
    )
    app_env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert app_env["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1"
    assert app_env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000"
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "switchman-identity")
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "switchman"
    # The CA in the pod is the operator's (from its Secret) and verifies its gRPC port.
    ca_pem = pod["metadata"]["annotations"]["switchman.io/operator-ca"]
    secret = get_json(
        injection.cluster,
        "secret",
        f"{injection.release}-switchman-ca",
        "-n",
        injection.operator_ns,
    )
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == ca_pem
    channel = grpc.secure_channel(
        f"127.0.0.1:{injection.grpc_port}",
        grpc.ssl_channel_credentials(root_certificates=ca_pem.encode()),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )
    try:
        grpc.channel_ready_future(channel).result(timeout=15)
    finally:
        channel.close()


def test_unannotated_and_opted_out_pods_are_unchanged(injection: Injection) -> None:
    plain_ns = injection.namespace(labelled=False)
    labelled_ns = injection.namespace(labelled=True)
    assert injection.apply_pod(plain_ns, "web").returncode == 0
    out = injection.apply_pod(labelled_ns, "batch", {"switchman.io/inject": "false"})
    assert out.returncode == 0
    for ns, name in ((plain_ns, "web"), (labelled_ns, "batch")):
        pod = injection.pod(ns, name)
        assert "initContainers" not in pod["spec"], name
        assert "env" not in pod["spec"]["containers"][0], name
        assert "switchman.io/status" not in pod["metadata"].get("annotations", {}), name
    # The labelled namespace injects pods that say nothing.
    assert injection.apply_pod(labelled_ns, "worker").returncode == 0
    assert injection.pod(labelled_ns, "worker")["spec"]["initContainers"][0]["name"] == (
        "switchman-proxy"
    )


def test_never_in_the_operator_namespace_nor_host_network(injection: Injection) -> None:
    out = injection.apply_pod(injection.operator_ns, "op-side", {"switchman.io/inject": "true"})
    assert out.returncode == 0
    assert "initContainers" not in injection.pod(injection.operator_ns, "op-side")["spec"]
    ns = injection.namespace(labelled=True)
    assert injection.apply_pod(ns, "agent", hostNetwork=True).returncode == 0
    assert "initContainers" not in injection.pod(ns, "agent")["spec"]


def test_injecting_an_injected_pod_changes_nothing(injection: Injection) -> None:
    ns = injection.namespace(labelled=True)
    assert injection.apply_pod(ns, "first", {"switchman.io/proxy-memory": "128Mi"}).returncode == 0
    first = injection.pod(ns, "first")
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "second",
            "namespace": ns,
            "annotations": first["metadata"]["annotations"],
        },
        "spec": {k: first["spec"][k] for k in ("initContainers", "containers", "volumes")},
    }
    out = injection.cluster.kubectl("create", "-f", "-", input=json.dumps(again), check=False)
    assert out.returncode == 0, out.stderr
    second = injection.pod(ns, "second")
    for key in ("initContainers", "containers", "volumes"):
        assert second["spec"][key] == first["spec"][key], key
    applied = "kubectl.kubernetes.io/last-applied-configuration"
    assert second["metadata"]["annotations"] == first["metadata"]["annotations"] | {
        applied: second["metadata"]["annotations"].get(applied)
    }


def test_bad_override_is_refused_with_a_clear_message(injection: Injection) -> None:
    ns = injection.namespace(labelled=False)
    out = injection.apply_pod(
        ns, "typo", {"switchman.io/inject": "true", "switchman.io/proxy-cpu": "lots"}
    )
    assert out.returncode != 0
    assert "denied the request" in out.stderr
    assert "switchman.io/proxy-cpu: 'lots' is not a Kubernetes quantity" in out.stderr
    got = injection.cluster.kubectl("get", "pod", "typo", "-n", ns, check=False)
    assert got.returncode != 0  # nothing stored


def test_values_change_is_picked_up_without_restart(injection: Injection) -> None:
    original = injection.values_path.read_text()
    values = json.loads(original)
    values["image"] = "registry.example/switchman-sidecar:next"
    injection.values_path.write_text(json.dumps(values))
    ns = injection.namespace(labelled=True)

    def image_of_new_pod() -> bool:
        name = f"p-{secrets.token_hex(3)}"
        assert injection.apply_pod(ns, name).returncode == 0
        image = injection.pod(ns, name)["spec"]["initContainers"][0]["image"]
        return bool(image == values["image"])

    try:
        wait_until(image_of_new_pod, 10, "the new sidecar image", step=0.3)
    finally:
        injection.values_path.write_text(original)


def _served_serial(port: int, ca_pem: str) -> int | None:
    ctx = ssl.create_default_context(cadata=ca_pem)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return x509.load_der_x509_certificate(der).serial_number if der else None


def test_standalone_webhook_shares_the_ca_and_renews_its_certificate(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """`python -m switchman_operator.webhook` without the chart: it creates the CA
    Secret, a second replica reuses that CA, and a short-lived serving certificate
    is replaced in-process while the CA stays the same."""
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "SWITCHMAN_WEBHOOK_ADDRESS": f"127.0.0.1:{port}",
        "SWITCHMAN_WEBHOOK_TEMPLATE": str(CHART / "files" / "injection-template.yaml"),
        "SWITCHMAN_WEBHOOK_VALUES": str(tmp_path / "absent.json"),
        "SWITCHMAN_WEBHOOK_CA_SECRET": f"{namespace}/webhook-ca",
        "SWITCHMAN_WEBHOOK_HOSTS": "127.0.0.1",
        "SWITCHMAN_WEBHOOK_CERT_VALIDITY": "3",
    }
    log = tmp_path / "webhook.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "switchman_operator.webhook"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "switchman-webhook port=" in log.read_text() or proc.poll() is not None,
            30,
            "the webhook to listen",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        secret = get_json(cluster, "secret", "webhook-ca", "-n", namespace)
        ca_pem = base64.b64decode(secret["data"]["ca.crt"]).decode()
        first = wait_until(lambda: _served_serial(port, ca_pem), 10, "a verified handshake")
        # Renewed at two thirds of 3 s; the new certificate chains to the same CA.
        wait_until(
            lambda: (_served_serial(port, ca_pem) or first) != first, 15, "a renewed certificate"
        )
        replica = OperatorCertificates(
            WebhookKube(load_api_client(str(cluster.kubeconfig))),
            f"{namespace}/webhook-ca",
            ("127.0.0.1",),
            "",
            60,
            3600,
        )
        assert asyncio.run(replica.ensure_ca()).cert_pem.decode() == ca_pem
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, log.read_text()[-3000:]
