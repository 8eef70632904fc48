"""The operator end to end on the local control plane (DESIGN §3, §4, §6).

Real processes: ``switchman-operator`` against the test cluster's kubeconfig,
``switchman-sidecar`` with a token minted by TokenRequest for a Pod object,
the fake upstream as the only provider, the official openai SDK as the app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import openai
import yaml

from cluster.harness import Cluster, free_port
from switchman_operator.money import to_micros
from switchman_operator.tls import make_self_signed
from switchman_protocol import xds
from switchman_protocol.v1 import routes_pb2, usage_pb2

BIN = Path(sys.executable).parent


def wait_until(cond: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        time.sleep(0.1)


class Proc:
    """A child process with its output in a file; stopped by its own pid only."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read())


def start_fake(tmp_path: Path) -> tuple[Proc, str]:
    """The fake upstream as a process; returns it and its base URL."""
    fake = Proc(
        "fake",
        [sys.executable, "-m", "switchman_fake", "--port", "0", "--no-record"],
        dict(os.environ),
        tmp_path / "fake.log",
    )
    url = wait_until(
        lambda: next((ln for ln in fake.text().splitlines() if ln.startswith("http://")), ""),
        30,
        "fake upstream",
    )
    return fake, url


def write_tls_files(tmp_path: Path) -> dict[str, Path]:
    """A self-signed serving certificate for the operator's gRPC port, and its CA."""
    tls = make_self_signed(["localhost", "127.0.0.1"])
    files = {"cert": tmp_path / "tls.crt", "key": tmp_path / "tls.key", "ca": tmp_path / "ca.crt"}
    files["cert"].write_bytes(tls.cert_pem)
    files["key"].write_bytes(tls.key_pem)
    files["ca"].write_bytes(tls.ca_pem)
    return files


@dataclass
class World:
    cluster: Cluster
    namespace: str
    tmp: Path
    fake_url: str
    grpc_port: int
    admin_port: int
    tls_files: dict[str, Path]
    procs: list[Proc]

    def operator(self) -> Proc:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "SWITCHMAN_GRPC_ADDRESS": f"127.0.0.1:{self.grpc_port}",
            "SWITCHMAN_ADMIN_ADDRESS": f"127.0.0.1:{self.admin_port}",
            "SWITCHMAN_TLS_CERT": str(self.tls_files["cert"]),
            "SWITCHMAN_TLS_KEY": str(self.tls_files["key"]),
            "SWITCHMAN_TLS_CA": str(self.tls_files["ca"]),
            "SWITCHMAN_NAMESPACES": self.namespace,
            "SWITCHMAN_STATUS_INTERVAL": "0.5",
        }
        proc = Proc("operator", [str(BIN / "switchman-operator")], env, self.tmp / "operator.log")
        self.procs.append(proc)
        wait_until(
            lambda: "switchman-operator grpc=" in proc.text() or proc.popen.poll() is not None,
            60,
            "operator start",
        )
        assert proc.popen.poll() is None, proc.text()[-3000:]
        wait_until(lambda: self._ready(), 60, "operator ready")
        return proc

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin_port}/readyz", timeout=2
            ) as r:
                return r.status == 200
        except OSError:
            return False

    def pod(self, name: str, labels: dict[str, str], namespace: str | None = None) -> str:
        """Create a Pod object and mint its bound token (audience switchman)."""
        ns = namespace or self.namespace
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
        token = self.cluster.kubectl(
            "create",
            "token",
            "default",
            "-n",
            ns,
            "--audience=switchman",
            "--duration=1h",
            "--bound-object-kind=Pod",
            f"--bound-object-name={name}",
        ).stdout.strip()
        path = self.tmp / f"{ns}-{name}.token"
        path.write_text(token)
        return str(path)

    def sidecar(
        self, pod: str, token_file: str, namespace: str | None = None
    ) -> tuple[Proc, int, int]:
        ns = namespace or self.namespace
        port, admin = free_port(), free_port()
        env = {
            **os.environ,
            "SWITCHMAN_OPERATOR_ADDRESS": f"127.0.0.1:{self.grpc_port}",
            "SWITCHMAN_OPERATOR_CA": str(self.tls_files["ca"]),
            "SWITCHMAN_OPERATOR_SERVER_NAME": "localhost",
            "SWITCHMAN_TOKEN_FILE": token_file,
            "SWITCHMAN_BACKOFF_MAX": "1",
            "SWITCHMAN_USAGE_FLUSH": "0.05",
            "POD_NAMESPACE": ns,
            "POD_NAME": pod,
        }
        proc = Proc(
            f"sidecar-{pod}",
            [str(BIN / "switchman-sidecar"), "--port", str(port), "--admin-port", str(admin)],
            env,
            self.tmp / f"sidecar-{pod}.log",
        )
        self.procs.append(proc)
        return proc, port, admin

    def budget(self, name: str = "web") -> dict[str, Any]:
        out = self.cluster.kubectl("get", "teambudget", name, "-n", self.namespace, "-o", "json")
        status: dict[str, Any] = json.loads(out.stdout).get("status") or {}
        return status

    def proxy_status(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = http_json(
            f"http://127.0.0.1:{self.admin_port}/debug/proxy-status"
        )["sidecars"]
        return rows


def manifests(namespace: str, fake_url: str) -> str:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys", "namespace": namespace},
            "stringData": {"fake": "sk-e2e-secret-key"},
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "ModelPool",
            "metadata": {"name": "pool", "namespace": namespace},
            "spec": {
                "models": [
                    {
                        "name": "mini",
                        "provider": "openai-compatible",
                        "model": "fake-mini",
                        "endpoint": f"{fake_url}/v1",
                        "credentials": {"name": "keys", "key": "fake"},
                        "pricing": {"inputPerMTok": 3.0, "outputPerMTok": 15.0},
                        "contextWindow": 128000,
                        "maxOutputTokens": 256,
                        "quality": {"overall": 0.8},
                    }
                ]
            },
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "team": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "pools": ["pool"],
                "aliases": {"best": "mini"},
                "strategy": "cost",
            },
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "TeamBudget",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"team": "web", "period": "month", "limit": 100},
        },
    ]
    return yaml.safe_dump_all(docs)


def make_world(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[World]:
    """The ``world`` fixture (e2e/conftest.py): the fake, TLS files, the sample objects."""
    procs: list[Proc] = []
    fake, url = start_fake(tmp_path)
    procs.append(fake)
    files = write_tls_files(tmp_path)
    cluster.kubectl("apply", "-f", "-", input=manifests(namespace, url))
    w = World(cluster, namespace, tmp_path, url, free_port(), free_port(), files, procs)
    try:
        yield w
    finally:
        for proc in reversed(procs):
            proc.kill(signal.SIGTERM)


def chat(port: int, text: str) -> float:
    """One request through the sidecar with the openai SDK; returns its x-switchman-cost."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="best", messages=[{"role": "user", "content": text}], timeout=10
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    return float(raw.headers["x-switchman-cost"])


def test_table_push_routing_and_exact_spend_across_operator_restart(world: World) -> None:
    world.operator()
    token = world.pod("web-1", {"app": "web"})
    _, port, _ = world.sidecar("web-1", token)
    rows = wait_until(
        lambda: [r for r in world.proxy_status() if r["routes"]["state"] == "SYNCED"],
        30,
        "sidecar SYNCED",
    )
    assert (rows[0]["pod"], rows[0]["namespace"], rows[0]["team"]) == (
        "web-1",
        world.namespace,
        "web",
    )
    costs: list[float] = []  # every request that reached the sidecar, warm-up included
    wait_until(lambda: chat_ok(port, costs), 30, "sidecar serving")
    # The policy's status counts the sidecar; the budget starts the period at zero.
    wait_until(
        lambda: (
            world.cluster.kubectl(
                "get",
                "routingpolicy",
                "web",
                "-n",
                world.namespace,
                "-o",
                "jsonpath={.status.synced}",
            ).stdout
            == "1/1"
        ),
        30,
        "policy synced 1/1",
    )

    errors: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            i += 1
            try:
                costs.append(chat(port, f"request number {i} " + "word " * (i % 17)))
            except Exception as exc:  # the sidecar must keep serving; record, assert later
                errors.append(repr(exc))

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_until(lambda: len(costs) >= 40, 60, "traffic")  # the warm-up is costs[0]
        op = world.procs[-2]  # operator started before the sidecar
        assert op.name == "operator"
        op.kill(signal.SIGKILL)  # no chance to flush anything
        during = len(costs)
        wait_until(lambda: len(costs) >= during + 30, 60, "traffic while the operator is down")
        world.operator()
        wait_until(lambda: len(costs) >= during + 80, 60, "traffic after restart")
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors[:3]
    expected = sum(to_micros(c) for c in costs)
    seen: list[dict[str, Any]] = [{}]

    def counted() -> dict[str, Any] | None:
        seen[0] = world.budget()
        return seen[0] if seen[0].get("requests") == len(costs) else None

    try:
        status = wait_until(counted, 60, f"{len(costs)} requests counted")
    except AssertionError:
        raise AssertionError(f"status {seen[0]} after {len(costs)} requests") from None
    assert status["spentMicros"] == expected
    assert abs(status["spent"] - sum(costs)) <= len(costs) * 5e-7
    assert status["byModel"]["mini"]["requests"] == len(costs)
    assert status["state"] == "Ok"
    printed = world.cluster.kubectl("get", "teambudgets", "-n", world.namespace).stdout
    assert "web" in printed and "Ok" in printed


def chat_ok(port: int, costs: list[float]) -> bool:
    try:
        costs.append(chat(port, "warm up"))
        return True
    except Exception:
        return False


def test_pod_cannot_read_another_namespace_or_report_for_another_team(
    world: World, cluster: Cluster
) -> None:
    world.operator()
    token_web = world.pod("web-1", {"app": "web"})
    ca = world.tls_files["ca"].read_bytes()
    creds = grpc.ssl_channel_credentials(root_certificates=ca)
    opts = [("grpc.ssl_target_name_override", "localhost")]

    def ads(
        token_file: str, node: str
    ) -> tuple[grpc.StatusCode | None, routes_pb2.RouteTable | None]:
        token = Path(token_file).read_text()
        with grpc.secure_channel(f"127.0.0.1:{world.grpc_port}", creds, options=opts) as ch:
            call = ch.stream_stream(
                xds.ADS_METHOD,
                request_serializer=xds.request_serializer,
                response_deserializer=xds.response_deserializer,
            )(
                iter([xds.DiscoveryRequest(node=xds.Node(id=node), type_url=xds.ROUTE_TABLE_TYPE)]),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=5,
            )
            try:
                first = next(call)
            except grpc.RpcError as exc:
                return exc.code(), None  # type: ignore[attr-defined]
            except StopIteration:  # the stream ended (we half-closed) with nothing for us
                return grpc.StatusCode.OK, None
            call.cancel()
            return None, xds.unpack(first.resources[0], routes_pb2.RouteTable)

    # Its own table: yes, with the key of its own namespace.
    code, table = ads(token_web, f"{world.namespace}/web-1")
    assert code is None and table is not None and table.team == "web"
    assert table.models[0].credential.api_key == "sk-e2e-secret-key"
    # A pod in another namespace asking for this one's table by node id: refused.
    other_ns = world.namespace + "-x"
    cluster.kubectl("create", "namespace", other_ns)
    try:
        wait_until(
            lambda: (
                cluster.kubectl("get", "sa", "default", "-n", other_ns, check=False).returncode == 0
            ),
            30,
            "default SA",
        )
        token_other = world.pod("intruder", {"app": "web"}, namespace=other_ns)
        code, table = ads(token_other, f"{world.namespace}/web-1")
        assert code == grpc.StatusCode.PERMISSION_DENIED
        # Without a node id it gets only what its own namespace grants: nothing here.
        code, table = ads(token_other, "")
        assert table is None and code == grpc.StatusCode.OK
        # A token that is not bound to a pod is refused.
        plain = cluster.kubectl(
            "create", "token", "default", "-n", world.namespace, "--audience=switchman"
        ).stdout.strip()
        plain_file = world.tmp / "plain.token"
        plain_file.write_text(plain)
        code, _ = ads(str(plain_file), "")
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        cluster.kubectl("delete", "namespace", other_ns, "--wait=false", check=False)

    # Usage for another team is refused and not counted; its own team's is.
    def report(records: list[usage_pb2.UsageRecord], seq: int) -> usage_pb2.UsageAck:
        token = Path(token_web).read_text()
        batch = usage_pb2.UsageBatch(
            sidecar_id=f"{world.namespace}/web-1", boot_id="b1", sequence=seq, records=records
        )
        with grpc.secure_channel(f"127.0.0.1:{world.grpc_port}", creds, options=opts) as ch:
            call = ch.stream_stream(
                "/switchman.v1.UsageService/Report",
                request_serializer=usage_pb2.UsageBatch.SerializeToString,
                response_deserializer=usage_pb2.UsageAck.FromString,
            )(iter([batch]), metadata=[("authorization", f"Bearer {token}")], timeout=20)
            ack: usage_pb2.UsageAck = next(call)
            return ack

    ack = report([usage_pb2.UsageRecord(team="ml", model="mini", cost=5.0)], 1)
    assert not ack.accepted and "ml" in ack.error
    ack = report([usage_pb2.UsageRecord(team="web", model="mini", cost=0.25)], 2)
    assert ack.accepted
    ack = report([usage_pb2.UsageRecord(team="web", model="mini", cost=0.25)], 2)  # resent
    assert ack.accepted
    status = world.budget()
    assert status["spentMicros"] == 250_000 and status["requests"] == 1


def test_invalid_policy_reports_condition_and_event(world: World, cluster: Cluster) -> None:
    world.operator()
    patch = {"spec": {"fallbacks": [{"model": "mini", "to": ["best"]}], "pools": ["pool", "gone"]}}
    cluster.kubectl(
        "patch",
        "routingpolicy",
        "web",
        "-n",
        world.namespace,
        "--type=merge",
        "-p",
        json.dumps(patch),
    )

    def ready() -> dict[str, Any] | None:
        out = cluster.kubectl("get", "routingpolicy", "web", "-n", world.namespace, "-o", "json")
        body = json.loads(out.stdout)
        conds = (body.get("status") or {}).get("conditions") or []
        cond = next((c for c in conds if c["type"] == "Ready"), None)
        if (
            cond
            and cond["status"] == "False"
            and cond["observedGeneration"] == body["metadata"]["generation"]
        ):
            return cond
        return None

    cond = wait_until(ready, 30, "Ready=False")
    assert cond["reason"] == "PoolNotFound"
    assert "fallback chain loops: mini -> mini" in cond["message"]
    events = cluster.kubectl("get", "events", "-n", world.namespace, "-o", "json").stdout
    assert any(
        e["reason"] == "PoolNotFound" and e["involvedObject"]["name"] == "web"
        for e in json.loads(events)["items"]
    )


def test_relabelled_pod_gets_its_new_policy_and_team_without_reconnecting(world: World) -> None:
    other = [
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": "batch", "namespace": world.namespace},
            "spec": {
                "team": "batch",
                "selector": {"matchLabels": {"app": "batch"}},
                "pools": ["pool"],
                "aliases": {"best": "mini"},
                "strategy": "cost",
            },
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "TeamBudget",
            "metadata": {"name": "batch", "namespace": world.namespace},
            "spec": {"team": "batch", "period": "month", "limit": 100},
        },
    ]
    world.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(other))
    world.operator()
    token = world.pod("web-1", {"app": "web"})
    _, port, _ = world.sidecar("web-1", token)
    (row,) = wait_until(
        lambda: [r for r in world.proxy_status() if r["routes"]["state"] == "SYNCED"],
        30,
        "sidecar SYNCED",
    )
    assert (row["team"], row["policy"]) == ("web", f"{world.namespace}/web")
    costs: list[float] = []
    wait_until(lambda: chat_ok(port, costs), 30, "sidecar serving")

    world.cluster.kubectl(
        "label", "pod", "web-1", "-n", world.namespace, "app=batch", "--overwrite"
    )
    (moved,) = wait_until(
        lambda: [
            r
            for r in world.proxy_status()
            if r["team"] == "batch" and r["routes"]["state"] == "SYNCED"
        ],
        30,
        "the pod re-selected by the batch policy",
    )
    assert moved["connectedAt"] == row["connectedAt"]  # the same stream: no reconnect
    assert moved["routes"]["acked"] != row["routes"]["acked"]  # a new table was pushed
    after = chat(port, "charged to the new team")
    wait_until(lambda: world.budget("batch").get("requests") == 1, 30, "batch charged")
    assert world.budget("batch")["spentMicros"] == to_micros(after)
    assert world.budget("web")["requests"] == len(costs)  # the earlier request stays with web
