"""Helpers for the operator tests: a real control plane (gRPC + TLS on 127.0.0.1:0)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from switchman_operator.controlplane import ControlPlane
from switchman_operator.discovery.identity import StaticIdentifier
from switchman_operator.resources import PodInfo
from switchman_operator.settings import Settings
from switchman_operator.tls import make_self_signed
from switchman_operator.world import World
from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.control import ControlSettings

GOLDEN = Path(__file__).parent / "golden"

PODS = {
    "token-web-1": PodInfo("shop", "web-1", {"app": "web"}),
    "token-web-2": PodInfo("shop", "web-2", {"app": "web"}),
    "token-ml": PodInfo("shop", "trainer-1", {"app": "trainer"}),
    "token-other": PodInfo("other", "web-1", {"app": "web"}),
}


def objects(case: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())["objects"]
    return docs


class NoLedgerApi:
    """Discovery tests count no usage; any call is a test failure."""

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        raise AssertionError("unexpected ledger call")

    async def replace_status(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("unexpected ledger call")

    async def pod_names(self, namespace: str) -> set[str]:
        raise AssertionError("unexpected ledger call")


class RecordingTables:
    """A TableSink that keeps what it applied and refuses tables on demand."""

    def __init__(self) -> None:
        self.applied: list[routes_pb2.RouteTable] = []
        self.refuse: Callable[[routes_pb2.RouteTable], str] = lambda t: ""

    def apply(self, table: routes_pb2.RouteTable) -> None:
        why = self.refuse(table)
        if why:
            raise ValueError(why)
        self.applied.append(table)

    @property
    def current(self) -> routes_pb2.RouteTable | None:
        return self.applied[-1] if self.applied else None


async def wait_for(cond: Callable[[], object], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.world = World()
        self.objects = objects("least-privilege")
        for body in self.objects:
            self.world.upsert(body)
        self.tls = make_self_signed(["localhost", "127.0.0.1"])
        self.ca_file = tmp / "ca.pem"
        self.ca_file.write_bytes(self.tls.ca_pem)
        self.settings = Settings(grpc_address="127.0.0.1:0", debounce_quiet=0.02, debounce_max=0.2)
        self.cp: ControlPlane | None = None
        self.port = 0

    async def start(self, port: int = 0) -> ControlPlane:
        settings = Settings(grpc_address=f"127.0.0.1:{port}", debounce_quiet=0.02, debounce_max=0.2)
        self.cp = ControlPlane(
            settings, self.world, StaticIdentifier(PODS), NoLedgerApi(), self.tls
        )
        self.port = await self.cp.start()
        return self.cp

    def world_objects(self) -> list[dict[str, Any]]:
        return self.objects

    def client_settings(self, token: str, node_id: str = "") -> ControlSettings:
        token_file = self.tmp / f"{token}.jwt"
        token_file.write_text(token)
        return ControlSettings(
            address=f"127.0.0.1:{self.port}",
            token_file=token_file,
            ca_file=self.ca_file,
            server_name="localhost",
            node_id=node_id,
            backoff_initial=0.05,
            backoff_max=0.3,
            flush_interval=0.02,
        )
