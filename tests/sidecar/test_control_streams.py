"""The operator streams outlive any one failed stream, whatever it raises.

A usage batch written while the operator dies raises ``InvalidStateError``
("RPC already finished") from grpc.aio, not an ``AioRpcError``. It used to end
the reporter task: the sidecar kept serving and never reported usage again.
Here the first session fails that way and a real gRPC server then counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchman_protocol.v1 import usage_pb2
from switchman_sidecar.control.settings import ControlSettings
from switchman_sidecar.control.usage import UsageReporter


class Operator:
    """A real UsageService.Report on 127.0.0.1 that acknowledges every batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []

    async def report(
        self, batches: AsyncIterator[usage_pb2.UsageBatch], context: Any
    ) -> AsyncIterator[usage_pb2.UsageAck]:
        async for batch in batches:
            self.batches.append((batch.boot_id, batch.sequence))
            yield usage_pb2.UsageAck(boot_id=batch.boot_id, sequence=batch.sequence, accepted=True)


@pytest.fixture
async def operator() -> AsyncIterator[tuple[Operator, int]]:
    op = Operator()
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "switchman.v1.UsageService",
        {
            "Report": grpc.stream_stream_rpc_method_handler(
                op.report,
                request_deserializer=usage_pb2.UsageBatch.FromString,
                response_serializer=usage_pb2.UsageAck.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield op, port
    finally:
        await server.stop(0)


class FlakyReporter(UsageReporter):
    """Its first session ends the way a write racing the stream's end does."""

    sessions = 0

    async def _session(self) -> bool:
        self.sessions += 1
        if self.sessions == 1:
            raise asyncio.InvalidStateError("RPC already finished.")
        return await super()._session()


async def test_usage_reporter_survives_a_stream_ending_mid_write(
    operator: tuple[Operator, int], tmp_path: Path
) -> None:
    op, port = operator
    token = tmp_path / "token"
    token.write_text("t")
    settings = ControlSettings(
        address=f"127.0.0.1:{port}",
        token_file=token,
        insecure=True,
        node_id="team-a/web-1",
        backoff_initial=0.01,
        backoff_max=0.05,
        flush_interval=0.01,
    )
    reporter = FlakyReporter(settings)
    task = asyncio.create_task(reporter.run())
    try:
        for i in range(5):
            reporter.submit(usage_pb2.UsageRecord(request_id=f"r{i}", cost=0.001))
        assert await reporter.drain(20), reporter.last_error
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert reporter.sessions >= 2
    assert "InvalidStateError" in reporter.last_error
    assert reporter.acked == 5 and reporter.pending == 0
    assert [seq for _, seq in op.batches] == list(range(1, len(op.batches) + 1))


async def test_discovery_client_survives_any_failed_session(tmp_path: Path) -> None:
    from switchman_sidecar.budget import BudgetGate
    from switchman_sidecar.control.discovery import DiscoveryClient

    settings = ControlSettings(
        address="127.0.0.1:1", token_file=tmp_path / "t", backoff_initial=0.01, backoff_max=0.02
    )
    third = asyncio.Event()
    errors = iter([asyncio.InvalidStateError("RPC already finished."), RuntimeError("boom")])

    class Flaky(DiscoveryClient):
        async def _session(self) -> bool:
            try:
                raise next(errors)
            except StopIteration:
                third.set()
                return False

    client = Flaky(settings, tables=None, gate=BudgetGate())  # type: ignore[arg-type]
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(third.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert client.last_error == "RuntimeError: boom"
    assert not client.connected
