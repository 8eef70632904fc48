"""Two operator replicas with leader election on the local control plane (issue #4 item 7).

Both replicas are real ``switchman-operator`` processes against the test
cluster: exactly one holds the Lease and writes status; SIGKILL it and the
other takes over within lease duration + two retry periods (the candidate's
clock starts when it last *saw* a renewal, up to one retry period after it was
written, and it looks once per retry period); usage batches sent to both
replicas, concurrently and across the kill, are counted exactly once; a clean
shutdown hands the Lease back.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from test_operator import BIN, Proc, World, manifests, wait_until, write_tls_files

from cluster.harness import Cluster, free_port
from switchman_protocol.v1 import usage_pb2

LEASE = "switchman-e2e"
DURATION, DEADLINE, RETRY = 4.0, 3.0, 0.5
#: Candidate's worst case after the last renewal, plus API round trips on a loaded machine.
TAKEOVER_BOUND = DURATION + 2 * RETRY + 1.5


@dataclass
class Replica:
    name: str
    proc: Proc
    grpc_port: int
    admin_port: int

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        assert m, f"{name} missing from /metrics"
        return float(m.group(1))

    def leading(self) -> bool:
        try:
            return self.metric("switchman_leader") == 1.0
        except OSError:
            return False


@dataclass
class Pair:
    world: World  # test_operator's helpers (pods, tokens, budget) bound to this namespace
    replicas: dict[str, Replica]

    def start(self, name: str) -> Replica:
        grpc_port, admin_port = free_port(), free_port()
        files = self.world.tls_files
        env = {
            **os.environ,
            "KUBECONFIG": str(self.world.cluster.kubeconfig),
            "POD_NAME": name,
            "SWITCHMAN_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
            "SWITCHMAN_ADMIN_ADDRESS": f"127.0.0.1:{admin_port}",
            "SWITCHMAN_TLS_CERT": str(files["cert"]),
            "SWITCHMAN_TLS_KEY": str(files["key"]),
            "SWITCHMAN_TLS_CA": str(files["ca"]),
            "SWITCHMAN_NAMESPACES": self.world.namespace,
            "SWITCHMAN_STATUS_INTERVAL": "0.5",
            "SWITCHMAN_LEADER_ELECTION": "true",
            "SWITCHMAN_LEADER_ELECTION_LEASE": LEASE,
            "SWITCHMAN_LEADER_ELECTION_NAMESPACE": self.world.namespace,
            "SWITCHMAN_LEASE_DURATION_SECONDS": str(DURATION),
            "SWITCHMAN_RENEW_DEADLINE_SECONDS": str(DEADLINE),
            "SWITCHMAN_RETRY_PERIOD_SECONDS": str(RETRY),
        }
        proc = Proc(name, [str(BIN / "switchman-operator")], env, self.world.tmp / f"{name}.log")
        self.world.procs.append(proc)
        wait_until(
            lambda: "switchman-operator grpc=" in proc.text() or proc.popen.poll() is not None,
            60,
            f"{name} start",
        )
        assert proc.popen.poll() is None, proc.text()[-3000:]
        replica = Replica(name, proc, grpc_port, admin_port)
        self.replicas[name] = replica
        return replica

    def lease(self) -> dict[str, Any]:
        out = self.world.cluster.kubectl(
            "get", "lease", LEASE, "-n", self.world.namespace, "-o", "json", check=False
        )
        if out.returncode != 0:
            return {}
        spec: dict[str, Any] = json.loads(out.stdout).get("spec") or {}
        return spec

    def holder(self) -> str:
        return str(self.lease().get("holderIdentity") or "")


@pytest.fixture
def pair(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Pair]:
    files = write_tls_files(tmp_path)
    # No request reaches a model here: usage batches are sent directly.
    cluster.kubectl("apply", "-f", "-", input=manifests(namespace, "http://127.0.0.1:9"))
    procs: list[Proc] = []
    world = World(cluster, namespace, tmp_path, "", 0, 0, files, procs)
    try:
        yield Pair(world, {})
    finally:
        for proc in reversed(procs):
            proc.kill(signal.SIGTERM)


class Reporter:
    """One simulated sidecar boot sending UsageBatches straight to a replica's gRPC port."""

    def __init__(self, pair: Pair, pod: str, token_file: str) -> None:
        self.token = Path(token_file).read_text()
        self.node = f"{pair.world.namespace}/{pod}"
        self.creds = grpc.ssl_channel_credentials(
            root_certificates=pair.world.tls_files["ca"].read_bytes()
        )

    def send(self, replica: Replica, seq: int, cost: float) -> bool:
        """True when the replica acknowledged (counted or a duplicate); False on any failure."""
        batch = usage_pb2.UsageBatch(
            sidecar_id=self.node,
            boot_id="boot-1",
            sequence=seq,
            records=[usage_pb2.UsageRecord(team="web", model="mini", cost=cost)],
        )
        opts = [("grpc.ssl_target_name_override", "localhost")]
        try:
            with grpc.secure_channel(
                f"127.0.0.1:{replica.grpc_port}", self.creds, options=opts
            ) as ch:
                call = ch.stream_stream(
                    "/switchman.v1.UsageService/Report",
                    request_serializer=usage_pb2.UsageBatch.SerializeToString,
                    response_deserializer=usage_pb2.UsageAck.FromString,
                )(
                    iter([batch]),
                    metadata=[("authorization", f"Bearer {self.token}")],
                    timeout=15,
                )
                ack: usage_pb2.UsageAck = next(call)
        except (grpc.RpcError, StopIteration):
            return False
        assert ack.accepted, ack.error
        return True

    def send_to_all(self, replicas: list[Replica], seq: int, cost: float) -> int:
        """The same batch to every replica at once (a sidecar that resent elsewhere)."""
        results: list[bool] = []
        threads = [
            threading.Thread(target=lambda r=r: results.append(self.send(r, seq, cost)))
            for r in replicas
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        return sum(results)


def cost_of(seq: int) -> float:
    return round(0.001 * seq + 0.000123, 6)  # distinct, exact in micro-USD


def test_one_leader_writes_status_takeover_after_sigkill_and_usage_counted_once(
    pair: Pair,
) -> None:
    world = pair.world
    a, b = pair.start("op-a"), pair.start("op-b")
    both = [a, b]
    # Exactly one replica leads, and it is the Lease's holder (pod name + random suffix).
    wait_until(lambda: sum(r.leading() for r in both) == 1, 30, "one leader")
    leader = next(r for r in both if r.leading())
    follower = b if leader is a else a
    holder = pair.holder()
    assert re.fullmatch(rf"{leader.name}_[0-9a-f]{{8}}", holder), holder

    # Only the leader writes status: the initial Ready conditions, then an invalid policy.
    def policy_ready() -> dict[str, Any] | None:
        out = world.cluster.kubectl(
            "get", "routingpolicy", "web", "-n", world.namespace, "-o", "json"
        )
        body = json.loads(out.stdout)
        conds = (body.get("status") or {}).get("conditions") or []
        cond = next((c for c in conds if c["type"] == "Ready"), None)
        if cond and cond["observedGeneration"] == body["metadata"]["generation"]:
            return dict(cond)
        return None

    assert wait_until(policy_ready, 30, "policy Ready")["status"] == "True"
    world.cluster.kubectl(
        "patch",
        "routingpolicy",
        "web",
        "-n",
        world.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"pools": ["pool", "gone"]}}),
    )
    wait_until(lambda: (policy_ready() or {}).get("reason") == "PoolNotFound", 30, "Ready=False")
    assert leader.metric("switchman_status_writes_total") > 0
    assert follower.metric("switchman_status_writes_total") == 0
    events = json.loads(
        world.cluster.kubectl("get", "events", "-n", world.namespace, "-o", "json").stdout
    )["items"]
    flips = [e for e in events if e["reason"] == "PoolNotFound"]
    assert len(flips) == 1, flips  # one writer, one event

    # Usage to both replicas at once, then across the SIGKILL of the leader.
    world.cluster.kubectl(
        "patch",
        "routingpolicy",
        "web",
        "-n",
        world.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"pools": ["pool"]}}),
    )
    wait_until(lambda: (policy_ready() or {}).get("status") == "True", 30, "policy fixed")
    reporter = Reporter(pair, "web-1", world.pod("web-1", {"app": "web"}))
    sent: list[int] = []
    for seq in range(1, 11):
        assert reporter.send_to_all(both, seq, cost_of(seq)) == 2
        sent.append(seq)
    before = world.budget()
    assert before["requests"] == 10, before

    killed_at = time.monotonic()
    leader.proc.kill(signal.SIGKILL)
    for seq in range(11, 21):
        # The dead replica fails; the batch is resent to the survivor until acknowledged.
        acks = reporter.send_to_all(both, seq, cost_of(seq))
        while acks == 0 and time.monotonic() < killed_at + 60:
            acks = int(reporter.send(follower, seq, cost_of(seq)))
        assert acks >= 1, f"batch {seq} never acknowledged"
        sent.append(seq)

    def took_over() -> bool:
        return follower.leading() and pair.holder().startswith(f"{follower.name}_")

    wait_until(took_over, TAKEOVER_BOUND + 5, "takeover")
    takeover = time.monotonic() - killed_at
    print(f"takeover after SIGKILL: {takeover:.2f} s (lease {DURATION} s, retry {RETRY} s)")
    assert takeover <= TAKEOVER_BOUND, takeover
    assert pair.lease()["leaseTransitions"] >= 1

    # Exactly once: every batch, however many replicas saw it, counted one time.
    status = world.budget()
    assert status["requests"] == len(sent) == 20, status
    assert status["spentMicros"] == sum(round(cost_of(s) * 1_000_000) for s in sent)
    assert status["sequences"]["web-1/boot-1"] == 20

    # The new leader writes status (its first full reconcile and any change after).
    world.cluster.kubectl(
        "patch",
        "routingpolicy",
        "web",
        "-n",
        world.namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"pools": ["pool", "gone-again"]}}),
    )
    cond = wait_until(
        lambda: c if (c := policy_ready()) and c["status"] == "False" else None, 30, "new leader"
    )
    assert "gone-again" in cond["message"]
    assert follower.metric("switchman_status_writes_total") > 0

    # A clean shutdown hands the Lease back at once (no wait for expiry).
    follower.proc.kill(signal.SIGTERM)  # waits for the exit
    # Clean: exit 0, no traceback (kopf's own shutdown used to cancel the gRPC server).
    assert follower.proc.popen.returncode == 0, follower.proc.text()[-3000:]
    assert "Traceback" not in follower.proc.text(), follower.proc.text()[-3000:]
    assert pair.holder() == "", pair.lease()
    assert "released the lease" in follower.proc.text()
