"""`make demo`: Switchman on the local control plane, step by step.

Brings up the local Kubernetes control plane under .cluster/ (or reuses the
running one), installs the CRDs, applies the sample resources and shows what
`kubectl` users see; then installs the chart with Helm, runs the operator as a
local process (the chart's URL mode: there is no kubelet to run its pod),
creates an annotated Deployment and shows the pod the API server stored, with
the sidecar injected. Every step is idempotent. Leaves the cluster running
(`make cluster-down` stops it); the operator stops when the demo ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "e2e"))

from cluster.harness import Cluster, free_port  # noqa: E402

RELEASE, OPERATOR_NS = "switchman", "switchman-system"
BIN = Path(sys.executable).parent


def step(title: str) -> None:
    print(f"\n\033[1m==> {title}\033[0m", flush=True)


def run(cluster: Cluster, *args: str) -> str:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    out = cluster.kubectl(*args).stdout
    print(out, end="" if out.endswith("\n") else "\n", flush=True)
    return out


def local_cluster() -> Cluster:
    workdir = REPO / ".cluster"
    if (workdir / "state.json").exists():
        existing = Cluster.load(workdir)
        if existing.pids:
            try:
                if existing.get("/readyz")[0] == 200:
                    return existing
            except OSError:
                pass
            existing.stop()
    return Cluster(workdir).start()


def helm(cluster: Cluster, *args: str) -> str:
    print(f"$ helm {' '.join(args)}", flush=True)
    out = subprocess.run(
        [cluster.bin("helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(cluster.workdir)},
    )
    if out.returncode != 0:
        raise SystemExit(f"helm failed:\n{out.stderr}")
    return str(out.stdout)


def wait_for(what: str, cond: Any, within: float = 60.0) -> Any:
    for _ in range(int(within / 0.2)):
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out after {within:.0f} s waiting for {what}")


@contextmanager
def local_operator(cluster: Cluster, webhook_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``switchman-operator`` as the chart would run it, reading the chart's ConfigMap."""
    config = json.loads(
        cluster.kubectl(
            "get", "configmap", f"{RELEASE}-injection", "-n", OPERATOR_NS, "-o", "json"
        ).stdout
    )
    mounted = cluster.workdir / "switchman" / "injection"
    mounted.mkdir(parents=True, exist_ok=True)
    for key, text in config["data"].items():
        (mounted / key).write_text(text)
    log = cluster.workdir / "logs" / "switchman-operator.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAMESPACE": OPERATOR_NS,
        "SWITCHMAN_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "SWITCHMAN_ADMIN_ADDRESS": f"127.0.0.1:{free_port()}",
        "SWITCHMAN_TLS_HOSTS": "localhost,127.0.0.1",
        "SWITCHMAN_WEBHOOK_ENABLED": "true",
        "SWITCHMAN_WEBHOOK_ADDRESS": f"127.0.0.1:{webhook_port}",
        "SWITCHMAN_WEBHOOK_TEMPLATE": str(mounted / "template.yaml"),
        "SWITCHMAN_WEBHOOK_VALUES": str(mounted / "values.json"),
        "SWITCHMAN_WEBHOOK_CA_SECRET": f"{OPERATOR_NS}/{RELEASE}-ca",
        "SWITCHMAN_WEBHOOK_HOSTS": "127.0.0.1",
        "SWITCHMAN_WEBHOOK_CONFIG": f"{RELEASE}-{OPERATOR_NS}",
    }
    print(f"$ switchman-operator  (webhook on https://127.0.0.1:{webhook_port}; log: {log})")
    with open(log, "wb") as out:  # this run's log only (the wait below reads it)
        proc = subprocess.Popen(
            [str(BIN / "switchman-operator")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            "the operator's webhook",
            lambda: proc.poll() is not None or "switchman-operator webhook=" in log.read_text(),
        )
        if proc.poll() is not None:
            raise SystemExit(f"the operator exited:\n{log.read_text()[-3000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


CHAT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: chat, namespace: checkout, labels: {app: chat}}
spec:
  replicas: 1
  selector: {matchLabels: {app: chat}}
  template:
    metadata:
      labels: {app: chat}
      annotations:
        switchman.io/inject: "true"
        switchman.io/proxy-memory-limit: 512Mi
    spec:
      containers:
        - name: app
          image: example.com/checkout/chat:1.0
"""


def chat_pods(cluster: Cluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", "checkout", "-l", "app=chat", "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return pods


def show_injection(cluster: Cluster) -> None:
    step('An annotated Deployment (switchman.io/inject: "true")')
    print(CHAT)
    cluster.kubectl("apply", "-f", "-", input=CHAT)
    print("$ kubectl apply -f chat.yaml")
    # Re-runs: replace the pod so the one shown was injected by this run.
    old = {p["metadata"]["name"] for p in chat_pods(cluster)}
    cluster.kubectl("delete", "pods", "-n", "checkout", "-l", "app=chat", "--wait=false")
    pod = wait_for(
        "the ReplicaSet to create the pod",
        lambda: next((p for p in chat_pods(cluster) if p["metadata"]["name"] not in old), None),
    )
    name = pod["metadata"]["name"]
    step(f"The pod the API server stored: {name}")
    run(
        cluster,
        "get",
        "pod",
        name,
        "-n",
        "checkout",
        "-o",
        "custom-columns=INIT:.spec.initContainers[*].name,RESTART:.spec.initContainers[0]"
        ".restartPolicy,CONTAINERS:.spec.containers[*].name,STATUS:.metadata.annotations"
        ".switchman\\.io/status",
    )
    spec = pod["spec"]
    sidecar = spec["initContainers"][0]
    shown = {
        "initContainers[0] (the sidecar)": {
            k: sidecar[k]
            for k in (
                "name",
                "image",
                "restartPolicy",
                "env",
                "ports",
                "readinessProbe",
                "resources",
                "securityContext",
                "volumeMounts",
            )
        },
        "containers[0].env (the app)": spec["containers"][0].get("env"),
        "volumes": [v for v in spec["volumes"] if v["name"].startswith("switchman-")],
    }
    print(f"$ kubectl get pod {name} -n checkout -o yaml   # excerpt\n")
    print(yaml.safe_dump(shown, sort_keys=False, width=100))


def main() -> int:
    step("Local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)")
    cluster = local_cluster()
    run(cluster, "version", "--output=yaml")
    step("Install the CRDs")
    run(cluster, "apply", "--server-side", "-f", str(REPO / "crds"))
    run(cluster, "wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))
    step("Apply the sample pool, policy and budget (examples/)")
    for name in ("namespace.yaml", "modelpool.yaml", "routingpolicy.yaml", "teambudget.yaml"):
        run(cluster, "apply", "-f", str(REPO / "examples" / name))
    step("What platform teams see")
    run(cluster, "get", "modelpools,routingpolicies,teambudgets", "-n", "checkout")
    step("A bad resource is refused at apply time")
    bad = "apiVersion: switchman.io/v1alpha1\nkind: TeamBudget\nmetadata: {name: oops}\n"
    bad += "spec: {team: checkout, limit: 100, hardAction: downgrade}\n"
    print("$ kubectl apply -f - <<< '...hardAction: downgrade without downgradeModel...'")
    proc = cluster.kubectl("apply", "-n", "checkout", "-f", "-", input=bad, check=False)
    print(proc.stderr.strip())
    step("Install Switchman with Helm (URL mode: the operator runs here, not in a pod)")
    webhook_port = free_port()
    helm(
        cluster,
        "upgrade",
        "--install",
        RELEASE,
        str(REPO / "charts" / "switchman"),
        "--namespace",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        f"webhook.url=https://127.0.0.1:{webhook_port}",
        "--wait=false",
    )
    run(cluster, "get", "deployments,services,configmaps,secrets", "-n", OPERATOR_NS)
    run(cluster, "get", "mutatingwebhookconfigurations")
    with local_operator(cluster, webhook_port):
        show_injection(cluster)
    print(f"\nThe cluster keeps running. export KUBECONFIG={cluster.kubeconfig}")
    print("Stop it with: make cluster-down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
