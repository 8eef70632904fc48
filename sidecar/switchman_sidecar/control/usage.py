"""The usage reporter: a UsageSink that ships records to the operator, at least once.

Records are grouped into batches numbered 1, 2, 3 … within this process's
boot (a fresh random ``boot_id`` per start). A batch stays in ``unacked``
until the operator acknowledges it — which it does only after the spend is in
TeamBudget status — and every reconnect resends the unacknowledged batches in
order. The operator counts each (pod, boot, sequence) once, so resending is
always safe. Memory is bounded by ``max_buffered_records``; records dropped
beyond it are counted in ``dropped`` (and logged), never silently.

Feedback on answers (``submit_feedback``: ratings, cascade and shadow
outcomes, see feedback.py) rides in the same batches (``UsageBatch.feedback``)
with the same sequencing and resending; a batch may carry feedback only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid

import grpc

from switchman_protocol.v1 import usage_pb2

from ..budget import BudgetGate
from .channel import auth_metadata, backoff_delays, describe_error, open_channel
from .settings import ControlSettings

__all__ = ["REPORT_METHOD", "UsageReporter"]

log = logging.getLogger("switchman.control")

REPORT_METHOD = "/switchman.v1.UsageService/Report"
#: Batches written but not yet acknowledged before the reporter waits for ACKs.
MAX_IN_FLIGHT = 4


class UsageReporter:
    def __init__(self, settings: ControlSettings, gate: BudgetGate | None = None) -> None:
        self.settings = settings
        self.gate = gate
        self.boot_id = uuid.uuid4().hex
        self.buffer: collections.deque[usage_pb2.UsageRecord] = collections.deque()
        self.feedback: collections.deque[usage_pb2.Feedback] = collections.deque()
        self.unacked: collections.OrderedDict[int, usage_pb2.UsageBatch] = collections.OrderedDict()
        self.next_sequence = 1
        self.acked = 0
        self.refused = 0
        self.dropped = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._first_buffered = 0.0
        self._flush_now = False

    # UsageSink ---------------------------------------------------------------

    def submit(self, record: usage_pb2.UsageRecord) -> None:
        if len(self.buffer) >= self.settings.max_buffered_records:
            self.buffer.popleft()
            self.dropped += 1
            log.error("usage buffer full: dropped a record (%d so far)", self.dropped)
        if not self.buffer:
            self._first_buffered = asyncio.get_running_loop().time()
            self._wake.set()
        self.buffer.append(record)
        self._idle.clear()
        if len(self.buffer) >= self.settings.batch_records:
            self._wake.set()

    def submit_feedback(self, feedback: usage_pb2.Feedback) -> None:
        if len(self.feedback) >= self.settings.max_buffered_records:
            self.feedback.popleft()
            self.dropped += 1
            log.error("usage buffer full: dropped a feedback item (%d so far)", self.dropped)
        if not self.buffer and not self.feedback:
            self._first_buffered = asyncio.get_running_loop().time()
            self._wake.set()
        self.feedback.append(feedback)
        self._idle.clear()

    # -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records not yet acknowledged (buffered or in unacked batches)."""
        return len(self.buffer) + sum(len(b.records) for b in self.unacked.values())

    async def drain(self, seconds: float) -> bool:
        """Send what is buffered now and wait until all of it is acknowledged; False on timeout."""
        self._flush_now = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        finally:
            self._flush_now = False
        return True

    def _cut_batch(self) -> None:
        if not self.buffer and not self.feedback:
            return
        n = min(len(self.buffer), self.settings.batch_records)
        records = [self.buffer.popleft() for _ in range(n)]
        k = min(len(self.feedback), self.settings.batch_records)
        feedback = [self.feedback.popleft() for _ in range(k)]
        batch = usage_pb2.UsageBatch(
            sidecar_id=self.settings.node_id,
            boot_id=self.boot_id,
            sequence=self.next_sequence,
            records=records,
            feedback=feedback,
        )
        self.unacked[self.next_sequence] = batch
        self.next_sequence += 1

    def _check_idle(self) -> None:
        if not self.buffer and not self.feedback and not self.unacked:
            self._idle.set()

    async def run(self) -> None:
        delays = backoff_delays(self.settings.backoff_initial, self.settings.backoff_max)
        while True:
            try:
                if await self._session():
                    delays = backoff_delays(
                        self.settings.backoff_initial, self.settings.backoff_max
                    )
            except Exception as exc:  # any failed stream: back off and resend, never die
                # Not only AioRpcError/OSError: writing a batch while the stream ends
                # (operator killed) raises asyncio.InvalidStateError ("RPC already
                # finished"). Letting it escape ended this task: the sidecar went on
                # serving but never reported usage again (the e2e restart test saw it).
                self.last_error = describe_error(exc)
                log.warning("usage stream failed: %s", self.last_error)
            await asyncio.sleep(next(delays))

    async def _session(self) -> bool:
        loop = asyncio.get_running_loop()
        async with open_channel(self.settings) as channel:
            call = channel.stream_stream(
                REPORT_METHOD,
                request_serializer=usage_pb2.UsageBatch.SerializeToString,
                response_deserializer=usage_pb2.UsageAck.FromString,
            )(metadata=auth_metadata(self.settings))
            sent = 0  # highest sequence written on this stream
            reader = asyncio.ensure_future(self._read_acks(call))
            try:
                while not reader.done():
                    for seq, batch in list(self.unacked.items()):
                        if seq > sent:
                            await call.write(batch)
                            sent = seq
                    timeout: float | None = None
                    if (self.buffer or self.feedback) and len(self.unacked) < MAX_IN_FLIGHT:
                        linger = self._first_buffered + self.settings.flush_interval - loop.time()
                        full = len(self.buffer) >= self.settings.batch_records
                        if full or self._flush_now or linger <= 0:
                            self._cut_batch()
                            continue
                        timeout = linger
                    waiter = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait(
                        {reader, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    waiter.cancel()
                    self._wake.clear()
                return reader.result()
            finally:
                reader.cancel()
                call.cancel()

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> bool:
        got = False
        async for ack in call:
            batch = self.unacked.pop(ack.sequence, None)
            if batch is None or ack.boot_id != self.boot_id:
                continue
            got = True
            cost = sum(r.cost for r in batch.records)
            if ack.accepted:
                self.acked += len(batch.records)
            else:
                self.refused += len(batch.records)
                log.error("operator refused usage batch %d: %s", ack.sequence, ack.error)
            if self.gate is not None:
                self.gate.reported(cost, self.boot_id, ack.sequence)
            self._check_idle()
            self._wake.set()
        return got
