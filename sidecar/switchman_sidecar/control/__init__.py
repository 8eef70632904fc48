"""The sidecar's link to the operator: route tables and budget state in, usage out.

``start_control`` is the seam the sidecar's entry point calls when
SWITCHMAN_OPERATOR_ADDRESS is set. It returns a handle whose ``usage`` is a
UsageSink for the pipeline and whose ``stop`` ends both streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..budget import BudgetGate
from .discovery import DiscoveryClient, TableSink
from .settings import ControlSettings
from .usage import UsageReporter

__all__ = ["Control", "ControlSettings", "DiscoveryClient", "UsageReporter", "start_control"]

log = logging.getLogger("switchman.control")


def _report_death(task: asyncio.Task[None]) -> None:
    """Both loops are meant to run until cancelled; say so loudly if one ever ends."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("%s ended: %r", task.get_name(), task.exception())


@dataclass
class Control:
    discovery: DiscoveryClient
    usage: UsageReporter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, drain_timeout: float = 2.0) -> None:
        """Give unacknowledged usage a moment to be counted, then close both streams."""
        if drain_timeout > 0:
            await self.usage.drain(drain_timeout)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def status(self) -> dict[str, object]:
        """For the sidecar's /config_dump and /readyz."""
        return {
            "connected": self.discovery.connected,
            "versions": dict(self.discovery.versions),
            "lastError": self.discovery.last_error or self.usage.last_error,
            "usage": {
                "bootId": self.usage.boot_id,
                "pending": self.usage.pending,
                "acked": self.usage.acked,
                "refused": self.usage.refused,
                "dropped": self.usage.dropped,
            },
        }


def start_control(
    tables: TableSink,
    gate: BudgetGate,
    settings: ControlSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> Control:
    """Start the discovery and usage streams as tasks on the running loop."""
    settings = settings or ControlSettings.from_env(env)
    control = Control(DiscoveryClient(settings, tables, gate), UsageReporter(settings, gate))
    control.tasks = [
        asyncio.create_task(control.discovery.run(), name="switchman-discovery"),
        asyncio.create_task(control.usage.run(), name="switchman-usage"),
    ]
    for task in control.tasks:
        task.add_done_callback(_report_death)
    return control
