"""Assembling and running one sidecar process (also used in-process by tests).

The seam to the control plane lives here: when the settings name an operator
address, ``switchman_sidecar.control`` is imported (lazily, only then) and
given the same ``TableStore``, ``BudgetGate`` and usage sink the standalone
mode uses — one pipeline behind both sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from typing import Any

from switchman_sidecar import lane
from switchman_sidecar.admin import AdminApp
from switchman_sidecar.app import AccessLog, App
from switchman_sidecar.budget import BudgetGate
from switchman_sidecar.compiled import COMPILED
from switchman_sidecar.feedback import FeedbackLog
from switchman_sidecar.http.client import UpstreamClient
from switchman_sidecar.http.server import HttpServer, ServerLimits, serve
from switchman_sidecar.logbuf import LineBuffer
from switchman_sidecar.metrics import Metrics
from switchman_sidecar.pii.gazetteer import preload_gazetteer
from switchman_sidecar.pipeline import Pipeline
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.shadow import ShadowRunner
from switchman_sidecar.table import CompiledTable, TableRejected, TableStore, load_table_file
from switchman_sidecar.usage import FanoutUsageSink, LogUsageSink, UsageSink

__all__ = ["Sidecar"]

log = logging.getLogger("switchman.sidecar")


class Sidecar:
    def __init__(
        self,
        settings: SidecarSettings,
        store: TableStore | None = None,
        sink: UsageSink | None = None,
        budget: BudgetGate | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or TableStore()
        self.budget = budget or BudgetGate()
        self.sinks = FanoutUsageSink()
        """Sinks that take usage records as protobufs (tests, the operator's reporter)."""
        self.log_lines = LineBuffer()
        """Access and usage log lines, batched into one write (see logbuf)."""
        usage_log = None
        if sink is not None:
            self.sinks.sinks.append(sink)
        elif settings.log_usage:
            usage_log = LogUsageSink(self.log_lines)
        self.metrics = Metrics()
        self.client = UpstreamClient()
        self.pipeline = Pipeline(
            settings,
            self.store,
            self.client,
            self.budget,
            self.sinks,
            self.metrics,
            AccessLog(self.log_lines) if settings.access_log else None,
            usage_log,
        )
        # Routing feedback (#6): answers by request id, ratings, shadow requests.
        self.feedback = FeedbackLog()
        self.pipeline.answers = self.feedback
        self.shadow = ShadowRunner(self.pipeline, self.feedback)
        self.pipeline.on_answer = self.shadow.after_answer
        self.pipeline.emit_feedback = self.feedback.emit
        self.control: Any = None
        self.lane: lane.NativeLane | None = None
        """The native lane on the main port (None: the Python server accepts)."""
        self._loaders: list[threading.Thread] = []
        """Start-up loads running in threads (the PII word lists)."""
        self._servers: list[HttpServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._mtime = 0.0

    @property
    def url(self) -> str:
        return self._servers[0].url

    @property
    def admin_url(self) -> str:
        return self._servers[1].url

    def load_config(self) -> bool:
        """(Re)load the standalone table file; False when it was rejected."""
        path = self.settings.config
        if path is None:
            return False
        try:
            self._mtime = path.stat().st_mtime
            compiled = self.store.apply(load_table_file(path))
        except (TableRejected, OSError) as exc:
            self.metrics.table_rejections.inc()
            log.error("route table %s rejected, keeping the previous one: %s", path, exc)
            return False
        self.metrics.table_version.clear()
        self.metrics.table_version.labels(compiled.table.version or "standalone").set(1)
        log.info("route table %s applied (%d models)", path, len(compiled.models))
        return True

    async def _watch(self) -> None:
        path = self.settings.config
        assert path is not None
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            if mtime != self._mtime:
                self.load_config()

    async def start(self) -> Sidecar:
        s = self.settings
        if not COMPILED:
            log.warning(
                "switchman_native is not installed: the router, PII scan and HTTP parsing "
                "run their Python reference (same results, slower); build native/ with cargo"
            )
        # PII word lists (~0.1 s from the cache file, ~1 s to build) load in a
        # worker thread now, not on the event loop at the first PII table/request
        self._loaders.append(preload_gazetteer())
        if s.config is not None and not self.load_config():
            raise TableRejected(self.store.last_error or f"cannot load {s.config}")
        status = None
        if s.operator_address:
            from switchman_sidecar import control  # lazily: standalone never needs gRPC

            self.control = control.start_control(self.store, self.budget)
            self.sinks.sinks.append(self.control.usage)
            self.feedback.outputs.append(self.control.usage.submit_feedback)
            status = self.control.status
        limits = ServerLimits(
            max_body_bytes=s.max_body_bytes,
            header_timeout_s=s.header_timeout_s,
            keepalive_timeout_s=s.keepalive_timeout_s,
        )
        app = App(self.pipeline, self.feedback)
        if s.native_lane and lane.available():
            self.lane = lane.NativeLane(self.pipeline, self.store, self.budget, self.client)
            self._servers.append(await self.lane.start(app, s.host, s.port, limits))
        else:
            self._servers.append(await serve(app, s.host, s.port, limits))
        self._servers.append(
            await serve(
                AdminApp(self.pipeline, status, self.lane.stats if self.lane else None),
                s.admin_host,
                s.admin_port,
            )
        )
        if s.config is not None:
            self._tasks.append(asyncio.create_task(self._watch(), name="switchman-config-watch"))
        return self

    async def settle(self, timeout_s: float = 60.0) -> None:
        """Once the start-up loads are done, freeze what they built (process mode).

        Start-up objects (modules, the table, the PII word lists: frozensets
        of ~10^5 words) live as long as the process. Frozen, the collector
        never scans them again; unfrozen, every full collection traversed the
        word lists (20-30 ms, a p99 pause) because the lists finish loading in
        their thread after the server has started. The server serves meanwhile.
        (The collector's thresholds stay at their defaults: a request leaves
        ~2 young collections per 1,000 requests, ~1 us a request.)
        """
        for thread in self._loaders:
            if thread.is_alive():
                await asyncio.to_thread(thread.join, timeout_s)
        _freeze()
        # Tables swapped in later (the operator's, a reloaded file) live as long
        # as they are in force, and a learned router's or a PII policy's objects
        # would otherwise be traversed by every full collection again: each one
        # is frozen when it is applied. (The table it replaces is freed by
        # reference counting, frozen or not: tables hold no reference cycles,
        # tests/sidecar/test_settle.py checks it.)
        if _settle_table not in self.store.on_apply:
            self.store.on_apply.append(_settle_table)

    async def close(self) -> None:
        await self.shadow.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.lane is not None:
            await self.lane.close()
        if self.control is not None:
            await self.control.stop()
        for server in self._servers:
            await server.close()
        self.client.close()
        self.log_lines.flush()


def _freeze() -> None:
    """Collect what is garbage now, then exempt every live object from later
    collections (``gc.freeze``)."""
    gc.collect()
    gc.freeze()


def _settle_table(_table: CompiledTable) -> None:
    # A full collection of what is not frozen yet (the new table, requests in
    # flight): ~0.05 ms, once per table change.
    _freeze()
