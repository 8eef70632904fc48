"""The sidecar's discovery client: subscribe, apply atomically, ACK or NACK.

Static stability: the table in the TableStore is only ever replaced by a table
that applied cleanly; losing the operator changes nothing but the connection
state, and the client reconnects with backoff, announcing the version it holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from switchman_protocol import xds
from switchman_protocol.v1 import budget_pb2, routes_pb2

from ..budget import BudgetGate
from .channel import auth_metadata, backoff_delays, describe_error, open_channel
from .settings import ControlSettings

__all__ = ["DiscoveryClient", "TableSink"]

log = logging.getLogger("switchman.control")

INVALID_ARGUMENT = 3


class TableSink(Protocol):
    """The sidecar's TableStore: ``apply`` swaps the table in or raises (→ NACK)."""

    def apply(self, table: routes_pb2.RouteTable) -> Any: ...


class DiscoveryClient:
    def __init__(
        self,
        settings: ControlSettings,
        tables: TableSink,
        gate: BudgetGate,
        on_table: Callable[[routes_pb2.RouteTable], None] = lambda t: None,
    ) -> None:
        self.settings = settings
        self.tables = tables
        self.gate = gate
        self.on_table = on_table
        self.versions: dict[str, str] = {}  # type URL -> last applied version
        self.connected = False
        self.last_error = ""
        self.last_update: float | None = None
        self.rejected = 0
        self.first_table = asyncio.Event()

    async def run(self) -> None:
        """Forever: connect, serve the stream, back off on failure."""
        delays = backoff_delays(self.settings.backoff_initial, self.settings.backoff_max)
        while True:
            received = False
            try:
                received = await self._session()
            except Exception as exc:  # any failed stream: back off and reconnect, never die
                # Not only AioRpcError/OSError: a write racing the stream's end raises
                # asyncio.InvalidStateError ("RPC already finished"), which would otherwise
                # end this task and leave the sidecar without tables for good.
                self.last_error = describe_error(exc)
                log.warning("operator stream failed: %s", self.last_error)
            finally:
                self.connected = False
            if received:  # a working session resets the backoff
                delays = backoff_delays(self.settings.backoff_initial, self.settings.backoff_max)
            await asyncio.sleep(next(delays))

    def _request(self, type_url: str, nonce: str = "", error: str = "") -> xds.DiscoveryRequest:
        return xds.DiscoveryRequest(
            node=xds.Node(id=self.settings.node_id),
            type_url=type_url,
            version_info=self.versions.get(type_url, ""),
            response_nonce=nonce,
            error_detail=xds.Status(code=INVALID_ARGUMENT, message=error[:1024]) if error else None,
        )

    async def _session(self) -> bool:
        received = False
        async with open_channel(self.settings) as channel:
            call = channel.stream_stream(
                xds.ADS_METHOD,
                request_serializer=xds.request_serializer,
                response_deserializer=xds.response_deserializer,
            )(metadata=auth_metadata(self.settings))
            for type_url in (xds.ROUTE_TABLE_TYPE, xds.BUDGET_STATE_TYPE):
                await call.write(self._request(type_url))
            self.connected = True
            async for response in call:
                received = True
                await call.write(self._handle(response))
        return received

    def _handle(self, response: xds.DiscoveryResponse) -> xds.DiscoveryRequest:
        type_url = response.type_url
        try:
            if type_url == xds.ROUTE_TABLE_TYPE:
                if len(response.resources) != 1:
                    raise ValueError(f"expected one RouteTable, got {len(response.resources)}")
                table = xds.unpack(response.resources[0], routes_pb2.RouteTable)
                self.tables.apply(table)  # atomic swap, or raises and keeps the old table
                self.on_table(table)
                self.first_table.set()
            elif type_url == xds.BUDGET_STATE_TYPE:
                for resource in response.resources:
                    self.gate.update(xds.unpack(resource, budget_pb2.BudgetState))
            else:
                raise ValueError(f"unknown resource type {type_url}")
        except Exception as exc:  # any failure to apply is a NACK, never a crash
            self.rejected += 1
            message = str(exc) or type(exc).__name__
            log.warning("rejected %s version %s: %s", type_url, response.version_info, message)
            return self._request(type_url, response.nonce, message)
        self.versions[type_url] = response.version_info
        self.last_update = time.time()
        return self._request(type_url, response.nonce)
