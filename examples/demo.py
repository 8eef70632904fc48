"""`make demo`: Switchman on the local control plane, step by step.

Brings up the local Kubernetes control plane under .cluster/ (or reuses the
running one), installs the CRDs, applies the sample resources and shows what
`kubectl` users see; then installs the chart with Helm, runs the operator as a
local process (the chart's URL mode: there is no kubelet to run its pod),
creates an annotated Deployment and shows the pod the API server stored, with
the sidecar injected. Then the data plane: a fake provider (the only fake part)
stands in for OpenAI, Anthropic and Gemini, the pool's endpoints are patched to
it, a sidecar runs as a local process with the injected container's environment
and a token bound to the injected pod, and the official openai SDK sends a few
requests through it; the TeamBudget's spend and `switchman proxy-status` follow.

Every step is idempotent. Leaves the cluster running (`make cluster-down` stops
it); every process the demo starts stops when it ends. ``--dir`` (or
``SWITCHMAN_DEMO_DIR``) puts the cluster elsewhere than .cluster/ (the e2e
smoke test uses a throwaway one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import yaml

from switchman_fake.answers import last_user_text
from switchman_fake.server import FakeUpstream
from switchman_operator.money import to_micros

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


def local_cluster(workdir: Path) -> Cluster:
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


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    grpc_port: int
    admin_port: int


@contextmanager
def local_operator(cluster: Cluster, webhook_port: int) -> Iterator[Operator]:
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
    grpc_port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "POD_NAMESPACE": OPERATOR_NS,
        "SWITCHMAN_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "SWITCHMAN_ADMIN_ADDRESS": f"127.0.0.1:{admin_port}",
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
        yield Operator(proc, grpc_port, admin_port)
    finally:
        stop_process(proc, 20)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM this child (by its own pid), SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# Labelled app=checkout-api, so the sample RoutingPolicy (examples/) selects its pods.
CHAT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: checkout-api, namespace: checkout, labels: {app: checkout-api}}
spec:
  replicas: 1
  selector: {matchLabels: {app: checkout-api}}
  template:
    metadata:
      labels: {app: checkout-api}
      annotations:
        switchman.io/inject: "true"
        switchman.io/proxy-memory-limit: 512Mi
    spec:
      containers:
        - name: app
          image: example.com/checkout/api:1.0
"""


def chat_pods(cluster: Cluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", "checkout", "-l", "app=checkout-api", "-o", "json")
    pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return pods


def show_injection(cluster: Cluster) -> dict[str, Any]:
    """Create the annotated Deployment; return the (injected) pod this run created."""
    step('An annotated Deployment (switchman.io/inject: "true")')
    print(CHAT)
    cluster.kubectl("apply", "-f", "-", input=CHAT)
    print("$ kubectl apply -f checkout-api.yaml")
    # Re-runs: replace the pod so the one shown was injected by this run.
    old = {p["metadata"]["name"] for p in chat_pods(cluster)}
    cluster.kubectl("delete", "pods", "-n", "checkout", "-l", "app=checkout-api", "--wait=false")
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
    return dict(pod)


# --- The data plane: fake provider, sidecar, SDK traffic, spend ------------------------

#: Where each provider's API lives on the fake (it speaks all four shapes on one port).
FAKE_PATHS = {"openai": "/v1", "openai-compatible": "/v1", "anthropic": "", "gemini": "/v1beta"}
IDENTITY = "/var/run/secrets/switchman/"


@contextmanager
def fake_upstream() -> Iterator[FakeUpstream]:
    """The fake provider, in this process so its record of what it received can be shown."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-upstream", daemon=True)
    thread.start()
    fake = FakeUpstream()
    try:
        asyncio.run_coroutine_threadsafe(fake.start("127.0.0.1", 0), loop).result(10)
        print(f"fake provider (OpenAI, Anthropic and Gemini shapes) on {fake.url}")
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def point_pool_at(cluster: Cluster, url: str) -> None:
    """Patch the sample pool's endpoints (in the cluster only; examples/ stays realistic)."""
    pool = json.loads(
        cluster.kubectl("get", "modelpool", "general", "-n", "checkout", "-o", "json").stdout
    )
    ops = [
        {
            "op": "add",
            "path": f"/spec/models/{i}/endpoint",
            "value": url + FAKE_PATHS[m["provider"]],
        }
        for i, m in enumerate(pool["spec"]["models"])
    ]
    print("$ kubectl patch modelpool general -n checkout --type=json -p '[")
    for op in ops:
        print(f"    {json.dumps(op)},")
    print("  ]'")
    cluster.kubectl(
        "patch", "modelpool", "general", "-n", "checkout", "--type=json", "-p", json.dumps(ops)
    )


def sidecar_env(
    container: dict[str, Any], pod: dict[str, Any], local: dict[str, str]
) -> dict[str, str]:
    """The injected container's environment, with the pod's fields resolved and ``local`` on top."""
    fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": "checkout"}
    env: dict[str, str] = {}
    for item in container["env"]:
        ref = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        value = fields[ref] if ref else str(item.get("value", ""))
        for name, known in env.items():  # Kubernetes' $(VAR) expansion
            value = value.replace(f"$({name})", known)
        env[item["name"]] = value
    return {**os.environ, **env, **local}


@contextmanager
def local_sidecar(
    cluster: Cluster, pod: dict[str, Any], operator: Operator
) -> Iterator[tuple[int, int, Path]]:
    """``switchman-sidecar`` as the injected pod would run it, with that pod's identity."""
    name = pod["metadata"]["name"]
    ident = cluster.workdir / "switchman" / "identity"
    ident.mkdir(parents=True, exist_ok=True)
    sa = pod["spec"].get("serviceAccountName", "default")
    token = cluster.kubectl(
        "create", "token", sa, "-n", "checkout", "--audience=switchman", "--duration=1h",
        "--bound-object-kind=Pod", f"--bound-object-name={name}",
    ).stdout.strip()  # fmt: skip
    print(f"$ kubectl create token {sa} -n checkout --audience=switchman \\")
    print(f"    --bound-object-kind=Pod --bound-object-name={name} > {ident}/token")
    (ident / "token").write_text(token)
    # The CA the downward API would project as ca.crt: the pod's own annotation.
    (ident / "ca.crt").write_text(pod["metadata"]["annotations"]["switchman.io/operator-ca"])
    port, admin = free_port(), free_port()
    env = sidecar_env(
        pod["spec"]["initContainers"][0],
        pod,
        {
            "SWITCHMAN_PORT": str(port),
            "SWITCHMAN_ADMIN_HOST": "127.0.0.1",
            "SWITCHMAN_ADMIN_PORT": str(admin),
            "SWITCHMAN_OPERATOR_ADDRESS": f"127.0.0.1:{operator.grpc_port}",
            "SWITCHMAN_OPERATOR_SERVER_NAME": "localhost",
            "SWITCHMAN_OPERATOR_CA": str(ident / "ca.crt"),
            "SWITCHMAN_TOKEN_FILE": str(ident / "token"),
        },
    )
    log = cluster.workdir / "logs" / "switchman-sidecar.log"
    print(f"$ switchman-sidecar   # the injected container's env; {IDENTITY}* -> {ident}/")
    print(f"  id {env['SWITCHMAN_SIDECAR_ID']}, proxy 127.0.0.1:{port}, admin :{admin}, log {log}")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "switchman-sidecar")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield port, admin, log
    finally:
        stop_process(proc, 10)


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - 127.0.0.1 only
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def serving_fake(admin: int, url: str) -> bool:
    """Ready (holds a table) and that table is the patched one (every model on the fake)."""
    if get_json(f"http://127.0.0.1:{admin}/readyz")[0] != 200:
        return False
    _, dump = get_json(f"http://127.0.0.1:{admin}/config_dump")
    models: list[dict[str, Any]] = ((dump or {}).get("route_table") or {}).get("models") or []
    return bool(models) and all(str(m.get("endpoint", "")).startswith(url) for m in models)


@dataclass
class Sent:
    label: str
    headers: Any
    answer: str
    cost: float = 0.0


def send_requests(port: int, log: Path) -> list[Sent]:
    app = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1",
        api_key="switchman-placeholder",  # what injection gives the app; the sidecar holds keys
        max_retries=0,
        timeout=15,
    )
    sent: list[Sent] = []

    def ask(label: str, text: str, **extra: Any) -> None:
        raw = app.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": text}], **extra
        )
        answer = raw.parse().choices[0].message.content or ""
        sent.append(Sent(label, raw.headers, answer, float(raw.headers["x-switchman-cost"])))

    ask("plain", "Summarise our refund policy in one sentence.")
    ask("x-tier: premium", "Draft a reply to a VIP customer.", extra_headers={"x-tier": "premium"})
    with app.chat.completions.with_streaming_response.create(
        model="auto", messages=[{"role": "user", "content": "Say hello, streamed."}], stream=True
    ) as resp:
        parts = [c.choices[0].delta.content or "" for c in resp.parse() if c.choices]
        sent.append(Sent("streamed", resp.headers, "".join(parts)))
    ask("with an e-mail", "Please e-mail the invoice to jane.doe@example.com today.")
    # A stream's cost is known after its headers: it is in the sidecar's access log.
    rid = sent[2].headers["x-switchman-request-id"]
    sent[2].cost = wait_for(
        "the streamed request's access-log line", lambda: logged_cost(log, rid), 10
    )
    return sent


def logged_cost(log: Path, request_id: str) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        if request_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "request" and entry.get("request_id") == request_id:
                return float(entry["cost"])
    return None


def show_traffic(cluster: Cluster, pod: dict[str, Any], operator: Operator) -> None:
    step("A fake provider, and the sample pool pointed at it")
    with fake_upstream() as fake:
        point_pool_at(cluster, fake.url)
        step(f"The sidecar of {pod['metadata']['name']}, as a local process with its identity")
        with local_sidecar(cluster, pod, operator) as (port, admin, log):
            wait_for(f"the sidecar's /readyz with the patched table (log: {log})",
                     lambda: serving_fake(admin, fake.url), 30)  # fmt: skip
            print(f"$ curl 127.0.0.1:{admin}/readyz -> 200 (route table from the operator)")
            before = budget_status(cluster)
            step("The app calls the OpenAI API on localhost (official openai SDK)")
            fake.clear()
            sent = send_requests(port, log)
            rows = [["REQUEST", "MODEL", "PROVIDER", "REASON", "COST ($)", "ANSWER"]]
            for s in sent:
                h = s.headers
                answer = s.answer if len(s.answer) <= 40 else s.answer[:37] + "..."
                rows.append([s.label, h["x-switchman-model"], h["x-switchman-provider"],
                             h["x-switchman-reason"], f"{s.cost:.8f}", answer])  # fmt: skip
            print(table(rows))
            step("PII: what left the pod vs what the app got back")
            body = fake.received[-1].body  # OpenAI/Anthropic "messages", Gemini "contents"
            received = last_user_text(body.get("messages") or body.get("contents") or [])
            print(f"provider received: {received!r}")
            print(f"app got back:      {sent[-1].answer!r}")
            print(f"x-switchman-pii-count: {sent[-1].headers.get('x-switchman-pii-count')}")
            show_spend(cluster, before, sent)
            step("Connected sidecars (switchman proxy-status)")
            admin_url = f"http://127.0.0.1:{operator.admin_port}"
            # The spend just changed: give the paced budget push (1 s) time to be ACKed.
            with contextlib.suppress(SystemExit):
                wait_for("budget state synced", lambda: budget_synced(admin_url), 10)
            print(f"$ switchman proxy-status --operator {admin_url}")
            out = subprocess.run(
                [str(BIN / "switchman"), "proxy-status", "--operator", admin_url],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            print(out.stdout, end="")


def budget_synced(admin_url: str) -> bool:
    _, body = get_json(f"{admin_url}/debug/proxy-status")
    rows = (body or {}).get("sidecars") or []
    return bool(rows) and all(r["budget"]["state"] == "SYNCED" for r in rows)


def budget_status(cluster: Cluster) -> dict[str, Any]:
    out = cluster.kubectl("get", "teambudget", "checkout", "-n", "checkout", "-o", "json")
    status: dict[str, Any] = json.loads(out.stdout).get("status") or {}
    return status


def show_spend(cluster: Cluster, before: dict[str, Any], sent: list[Sent]) -> None:
    step("The spend, charged to the team's budget")
    micros = sum(to_micros(s.cost) for s in sent)
    want = int(before.get("spentMicros", 0)) + micros
    seen: list[dict[str, Any]] = [before]

    def caught_up() -> bool:
        seen[0] = budget_status(cluster)
        return int(seen[0].get("spentMicros", -1)) == want

    try:
        wait_for("the TeamBudget status to count this run's requests", caught_up, 30)
    except SystemExit:
        raise SystemExit(f"TeamBudget status {seen[0]}, expected spentMicros {want}") from None
    run(cluster, "get", "teambudgets", "-n", "checkout")
    prior = int(before.get("spentMicros", 0))
    print(f"spentMicros {want} = {prior} (before this run) + {micros} "
          f"(the {len(sent)} requests above: ${micros / 1e6:.6f})")  # fmt: skip


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("SWITCHMAN_DEMO_DIR") or REPO / ".cluster")
    parser.add_argument("--dir", type=Path, default=default, help="cluster directory (.cluster)")
    workdir: Path = parser.parse_args().dir.resolve()
    step("Local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1)")
    cluster = local_cluster(workdir)
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
    with local_operator(cluster, webhook_port) as operator:
        pod = show_injection(cluster)
        show_traffic(cluster, pod, operator)
    print(f"\nThe cluster keeps running. export KUBECONFIG={cluster.kubeconfig}")
    if workdir == REPO / ".cluster":
        print("Stop it with: make cluster-down")
    else:
        print(f"Stop it with: .venv/bin/python e2e/cluster/harness.py down --dir {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
