"""Connected sidecars and what each should hold: the state behind the streams.

The hub owns no sockets. For each connection it tracks, per resource type,
what was sent, what was acknowledged and whether a response is in flight; it
computes the desired resources from the World on demand (compiled once per
label set per world version, so a thousand identical pods cost one compile),
and it answers proxy-status and the policy sync counts. One response per type
is in flight per connection; changes arriving meanwhile are merged into the
next one (the writer recomputes the desired state when the ACK comes back).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from switchman_protocol import xds
from switchman_protocol.v1 import budget_pb2, routes_pb2

from ..api.teambudget import TeamBudgetStatus
from ..compile import CompileResult, compile_route_table
from ..metrics import OperatorMetrics
from ..resources import BudgetObject, PodInfo
from ..usage.accounting import CONDITIONS, budget_state, counted_by_pod
from ..world import World

__all__ = ["Connection", "Hub", "Rejection", "TypeState", "sync_state"]

TYPES = (xds.ROUTE_TABLE_TYPE, xds.BUDGET_STATE_TYPE)
SHORT = {xds.ROUTE_TABLE_TYPE: "routes", xds.BUDGET_STATE_TYPE: "budget"}


@dataclass
class TypeState:
    sent_version: str = ""
    sent_nonce: str = ""
    sent_at: float = 0.0
    acked_version: str = ""
    last_ack: float | None = None  # wall clock, for proxy-status
    nack: str = ""
    in_flight: bool = False
    sent_condition: int = -1  # BudgetState only: the condition last sent (pacing exemption)
    paced: bool = False  # BudgetState only: a deferred wake-up is scheduled


@dataclass
class Connection:
    id: str
    pod: PodInfo
    connected_at: float
    subscribed: set[str] = field(default_factory=set)
    types: dict[str, TypeState] = field(default_factory=lambda: {t: TypeState() for t in TYPES})
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    policy: str | None = None
    team: str = ""
    table: routes_pb2.RouteTable | None = None  # last sent, for proxy-config


@dataclass(frozen=True, slots=True)
class Rejection:
    sidecar: str
    message: str
    time: str


def sync_state(ts: TypeState) -> str:
    """Istio's proxy-status words: NOT SENT, SYNCED (acked what was sent), STALE."""
    if not ts.sent_version:
        return "NOT SENT"
    if ts.acked_version == ts.sent_version and not ts.in_flight:
        return "SYNCED"
    return "STALE"


def _pow2ceil(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class Hub:
    def __init__(
        self,
        world: World,
        metrics: OperatorMetrics,
        on_rejection: Callable[[str, Rejection], None] = lambda policy, r: None,
        budget_interval: float = 0.0,
        replicas: int = 1,
        budget_rate: float = 0.0,
    ) -> None:
        self.world = world
        # Allowance divisor across replicas: each replica only sees its own sidecars, so
        # without it k replicas serving one team could hand out k x remaining in total.
        self.replicas = max(1, replicas)
        # Pacing of BudgetState pushes per connection while only the spend moves: without
        # it every group commit re-pushed the whole team (1,000 sidecars: ~2 pushes per
        # sidecar per second, half the operator's CPU, and gRPC then accepted new streams
        # so slowly that core cancelled them after 30 s pending).
        self.budget_interval = budget_interval
        # ... and a cap on such pushes per second over all connections (0: none). After
        # the ADS codec stopped costing a millisecond a message, the pushes were still
        # half of the operator's work at 1,000 sidecars, paid out of usage throughput.
        self.budget_rate = budget_rate
        self.metrics = metrics
        self.on_rejection = on_rejection
        self.connections: dict[str, Connection] = {}
        self.rejections: dict[str, Rejection] = {}
        self._ids = itertools.count(1)
        self._cache_version = -1
        self._cache: dict[tuple[str, frozenset[tuple[str, str]]], CompileResult] = {}
        # Connections per (namespace, team): the allowance divisor, kept as a count so a
        # budget push to N sidecars costs O(N), not O(N²) (1,000 sidecars: ~1M steps).
        self._peers: collections.Counter[tuple[str, str]] = collections.Counter()
        # Connected sidecars per pod, and pods whose labels changed while connected.
        self._pods: collections.Counter[tuple[str, str]] = collections.Counter()
        self._relabelled: dict[tuple[str, str], PodInfo] = {}
        # status.sequences by pod, per TeamBudget, rebuilt when its status object changes:
        # one pass per status write rather than one per connection (O(N) not O(N^2)).
        self._counted_index: dict[
            tuple[str, str], tuple[TeamBudgetStatus, dict[str, dict[str, int]]]
        ] = {}

    # --- connections -------------------------------------------------------

    def connect(self, pod: PodInfo) -> Connection:
        pod = self.current(pod)
        conn = Connection(f"{pod.key}#{next(self._ids)}", pod, time.time())
        result = self.compile(pod)
        conn.policy = result.policy
        conn.team = result.table.team if result.table else ""
        self.connections[conn.id] = conn
        self._peers[(pod.namespace, conn.team)] += 1
        self._pods[(pod.namespace, pod.name)] += 1
        self.metrics.connected.set(len(self.connections))
        self.wake_team(pod.namespace, conn.team)  # allowance slices depend on the count
        return conn

    def disconnect(self, conn: Connection) -> None:
        if self.connections.pop(conn.id, None) is not None:
            self._peers[(conn.pod.namespace, conn.team)] -= 1
            key = (conn.pod.namespace, conn.pod.name)
            self._pods[key] -= 1
            if self._pods[key] <= 0:
                del self._pods[key]
        self.metrics.connected.set(len(self.connections))
        self.wake_team(conn.pod.namespace, conn.team)

    # --- pod labels (the pod watch) ----------------------------------------

    def watches(self, namespace: str, name: str) -> bool:
        """Whether a pod event concerns us: a connected sidecar's pod, or one relabelled."""
        return (namespace, name) in self._pods or (namespace, name) in self._relabelled

    def current(self, pod: PodInfo) -> PodInfo:
        """``pod`` with the labels last seen by the pod watch (an identity may be cached)."""
        newer = self._relabelled.get((pod.namespace, pod.name))
        return newer if newer is not None and newer.uid == pod.uid else pod

    def relabel(self, namespace: str, name: str, uid: str, labels: Mapping[str, str]) -> bool:
        """A connected pod's labels changed: re-select its policy and team, push. Returns
        whether anything changed."""
        changed = False
        for conn in list(self.connections.values()):
            pod = conn.pod
            if (pod.namespace, pod.name) != (namespace, name) or (uid and pod.uid != uid):
                continue
            if dict(pod.labels) == dict(labels):
                continue
            new = dataclasses.replace(pod, labels=dict(labels))
            self._relabelled[(namespace, name)] = new
            old_team = conn.team
            result = self.compile(new)
            conn.pod, conn.policy = new, result.policy
            conn.team = result.table.team if result.table else ""
            if conn.team != old_team:
                self._peers[(namespace, old_team)] -= 1
                self._peers[(namespace, conn.team)] += 1
                self.wake_team(namespace, old_team)  # their slices grow
                self.wake_team(namespace, conn.team)
            conn.wake.set()
            changed = True
        return changed

    def forget_pod(self, namespace: str, name: str) -> None:
        self._relabelled.pop((namespace, name), None)

    def namespaces_changed(self, namespaces: set[str]) -> None:
        for conn in self.connections.values():
            if conn.pod.namespace in namespaces:
                conn.wake.set()

    def wake_team(self, namespace: str, team: str) -> None:
        """Wake the team's streams, except those whose BudgetState is held back (paced)
        and whose condition did not change: their own wake-up is already scheduled."""
        budget = self.world.budget_for(namespace, team)
        condition = CONDITIONS.get(budget.status.state or "Ok", 0) if budget else -1
        for conn in self.connections.values():
            if conn.pod.namespace != namespace or conn.team != team:
                continue
            ts = conn.types[xds.BUDGET_STATE_TYPE]
            if ts.paced and ts.sent_condition == condition:
                continue
            conn.wake.set()

    # --- desired state -----------------------------------------------------

    def compile(self, pod: PodInfo) -> CompileResult:
        if self._cache_version != self.world.version:
            self._cache.clear()
            self._cache_version = self.world.version
        key = (pod.namespace, frozenset(pod.labels.items()))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = compile_route_table(pod, self.world.resources(pod.namespace))
        return hit

    def desired(self, conn: Connection, type_url: str) -> tuple[str, Message] | None:
        result = self.compile(conn.pod)
        team = result.table.team if result.table else conn.team
        if type_url == xds.ROUTE_TABLE_TYPE:
            if result.table is None:
                return None
            return result.table.version, result.table
        if type_url == xds.BUDGET_STATE_TYPE and team:
            budget = self.world.budget_for(conn.pod.namespace, team)
            if budget is None:
                return None
            peers = self._peers[(conn.pod.namespace, team)]
            slices = _pow2ceil(peers) * self.replicas
            counted = self._counted(conn.pod.namespace, budget).get(conn.pod.name, {})
            state = budget_state(conn.pod.namespace, budget.spec, budget.status, slices, counted)
            digest = hashlib.sha256(state.SerializeToString(deterministic=True)).hexdigest()
            return digest[:16], state
        return None

    def _counted(self, namespace: str, budget: BudgetObject) -> dict[str, dict[str, int]]:
        key = (namespace, budget.name)
        hit = self._counted_index.get(key)
        if hit is None or hit[0] is not budget.status:
            hit = self._counted_index[key] = (budget.status, counted_by_pod(budget.status))
        return hit[1]

    # --- protocol ----------------------------------------------------------

    def on_request(self, conn: Connection, req: xds.DiscoveryRequest) -> None:
        """Subscribe, ACK or NACK; unknown types and stale nonces are ignored (xDS rules)."""
        type_url = req.type_url
        if type_url not in TYPES:
            return
        ts = conn.types[type_url]
        if not req.response_nonce:
            conn.subscribed.add(type_url)
            ts.sent_version = ""  # answer every fresh subscription, even if it holds that version
            ts.in_flight = False
            ts.acked_version = req.version_info
            conn.wake.set()
            return
        if req.response_nonce != ts.sent_nonce:
            return
        ts.in_flight = False
        self.metrics.push_latency.labels(SHORT[type_url]).observe(time.monotonic() - ts.sent_at)
        if xds.is_nack(req):
            ts.nack = req.error_detail.message[:1024] or "rejected"
            self.metrics.nacks.labels(SHORT[type_url]).inc()
            if type_url == xds.ROUTE_TABLE_TYPE and conn.policy:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                rejection = Rejection(conn.pod.key, ts.nack, when)
                self.rejections[conn.policy] = rejection
                self.on_rejection(conn.policy, rejection)
        else:
            ts.acked_version = req.version_info
            ts.last_ack = time.time()
            ts.nack = ""
        conn.wake.set()

    def next_responses(self, conn: Connection) -> list[xds.DiscoveryResponse]:
        """Responses to send now: changed resources of subscribed types with nothing in flight."""
        out: list[xds.DiscoveryResponse] = []
        result = self.compile(conn.pod)
        if result.table is not None:
            if conn.team != result.table.team:
                if conn.id in self.connections:
                    self._peers[(conn.pod.namespace, conn.team)] -= 1
                    self._peers[(conn.pod.namespace, result.table.team)] += 1
                if conn.team:
                    self.wake_team(conn.pod.namespace, conn.team)
            conn.team = result.table.team
        conn.policy = result.policy
        for type_url in TYPES:
            ts = conn.types[type_url]
            if type_url not in conn.subscribed or ts.in_flight:
                continue
            if type_url == xds.BUDGET_STATE_TYPE and ts.paced and not self._condition_moved(conn):
                continue  # held back, a wake-up is due: skip building a state to drop it
            want = self.desired(conn, type_url)
            if want is None or want[0] == ts.sent_version:
                continue
            version, message = want
            if type_url == xds.BUDGET_STATE_TYPE and self._pace(conn, ts, message):
                continue
            ts.sent_version, ts.sent_nonce = version, f"{next(self._ids):x}"
            ts.sent_at, ts.in_flight = time.monotonic(), True
            if type_url == xds.ROUTE_TABLE_TYPE:
                assert isinstance(message, routes_pb2.RouteTable)
                conn.table = message
            out.append(
                xds.DiscoveryResponse(
                    version_info=version,
                    resources=[xds.pack(message)],
                    type_url=type_url,
                    nonce=ts.sent_nonce,
                )
            )
            self.metrics.pushes.labels(SHORT[type_url]).inc()
        return out

    def _condition_moved(self, conn: Connection) -> bool:
        """Whether the team's budget condition differs from the one last sent (cheap)."""
        budget = self.world.budget_for(conn.pod.namespace, conn.team)
        if budget is None:
            return True
        condition = CONDITIONS.get(budget.status.state or "Ok", 0)
        return condition != conn.types[xds.BUDGET_STATE_TYPE].sent_condition

    def _pace(self, conn: Connection, ts: TypeState, message: Message) -> bool:
        """Whether to hold this BudgetState back for now (a wake-up is scheduled).

        Only spend-only changes are paced: the first push, and any change of the
        condition (Ok / SoftLimited / Exhausted), go out at once.
        """
        assert isinstance(message, budget_pb2.BudgetState)
        condition = int(message.condition)
        if ts.sent_condition != condition or not ts.sent_version:
            ts.sent_condition = condition
            return False
        interval = self.budget_interval
        if self.budget_rate > 0:
            interval = max(interval, len(self.connections) / self.budget_rate)
        wait = ts.sent_at + interval - time.monotonic()
        if wait <= 0:
            return False
        if not ts.paced:
            ts.paced = True

            def wake() -> None:
                ts.paced = False
                conn.wake.set()

            asyncio.get_running_loop().call_later(wait, wake)
        return True

    # --- views -------------------------------------------------------------

    def proxy_status(self) -> list[dict[str, Any]]:
        rows = []
        for conn in sorted(self.connections.values(), key=lambda c: c.id):
            row: dict[str, Any] = {
                "pod": conn.pod.name,
                "namespace": conn.pod.namespace,
                "team": conn.team,
                "policy": conn.policy or "",
                "connectedAt": conn.connected_at,
            }
            for type_url in TYPES:
                ts = conn.types[type_url]
                want = self.desired(conn, type_url)
                state = sync_state(ts)
                if state == "SYNCED" and want is not None and want[0] != ts.acked_version:
                    state = "STALE"
                row[SHORT[type_url]] = {
                    "state": state,
                    "sent": ts.sent_version,
                    "acked": ts.acked_version,
                    "lastAck": ts.last_ack,
                    "nack": ts.nack,
                }
            row["version"] = row["routes"]["acked"]
            rows.append(row)
        return rows

    def policy_counts(self) -> dict[str, tuple[int, int, str]]:
        """Policy key → (targeted sidecars, acknowledged the current table, compiled version)."""
        counts: dict[str, tuple[int, int, str]] = {}
        for conn in self.connections.values():
            result = self.compile(conn.pod)
            if result.policy is None:
                continue
            version = result.table.version if result.table else ""
            targeted, acked, _ = counts.get(result.policy, (0, 0, version))
            ok = bool(version) and conn.types[xds.ROUTE_TABLE_TYPE].acked_version == version
            counts[result.policy] = (targeted + 1, acked + int(ok), version)
        return counts

    def find(self, namespace: str, pod: str) -> list[Connection]:
        return [
            c
            for c in self.connections.values()
            if c.pod.namespace == namespace and c.pod.name == pod
        ]
