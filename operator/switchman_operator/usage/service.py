"""The usage stream handler: batches in, ACKs out only after they are durable.

Batches of one stream are handled strictly in order and one at a time: a
batch is acknowledged after the ledger wrote it, and if a write fails the
stream is closed without acknowledging, so the sidecar resends from the first
unacknowledged sequence (never skipping one, which the "highest sequence"
dedupe relies on). A batch is refused (``accepted=false``, not to be resent)
when it is not this pod's or names a team other than the one its own route
table charges.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc

from switchman_protocol.v1 import usage_pb2

from ..discovery.hub import Hub
from ..discovery.identity import AuthError, Identifier, bearer_token
from ..metrics import OperatorMetrics
from ..resources import PodInfo
from .accounting import Charge
from .ledger import Ledger

__all__ = ["FeedbackHook", "UsageService"]

log = logging.getLogger(__name__)

SERVICE = "switchman.v1.UsageService"

#: Called with (namespace, policy key, feedback) after a batch is counted: the seam
#: for the learned router's online update (switchman_operator.learning).
FeedbackHook = Callable[[str, str, Sequence[usage_pb2.Feedback]], None]


class UsageService:
    def __init__(
        self,
        hub: Hub,
        identifier: Identifier,
        ledger: Ledger,
        metrics: OperatorMetrics,
        on_feedback: FeedbackHook | None = None,
    ) -> None:
        self.hub = hub
        self.identifier = identifier
        self.ledger = ledger
        self.metrics = metrics
        self.on_feedback = on_feedback
        self._outcomes = {  # label lookups once, not per batch
            o: metrics.usage_batches.labels(o) for o in ("counted", "duplicate", "uncharged")
        }

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Report": grpc.stream_stream_rpc_method_handler(
                    self.report,
                    request_deserializer=usage_pb2.UsageBatch.FromString,
                    response_serializer=usage_pb2.UsageAck.SerializeToString,
                )
            },
        )

    async def report(
        self,
        batches: AsyncIterator[usage_pb2.UsageBatch],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        try:
            pod = await self.identifier.identify(bearer_token(context.invocation_metadata()))
        except AuthError as exc:
            self.metrics.auth_failures.inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            return
        async for batch in batches:
            ack = await self.handle(pod, batch)
            if ack is None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "usage not counted; resend")
                return
            await context.write(ack)

    async def handle(self, pod: PodInfo, batch: usage_pb2.UsageBatch) -> usage_pb2.UsageAck | None:
        """The ACK for one batch, or None when it could not be made durable (resend it)."""

        def refuse(message: str) -> usage_pb2.UsageAck:
            self.metrics.usage_batches.labels("refused").inc()
            log.warning("usage batch from %s refused: %s", pod.key, message)
            return usage_pb2.UsageAck(
                boot_id=batch.boot_id, sequence=batch.sequence, accepted=False, error=message
            )

        if batch.sidecar_id and batch.sidecar_id != pod.key:
            return refuse(f"sidecar_id {batch.sidecar_id!r} is not this token's pod {pod.key!r}")
        if not batch.boot_id or batch.sequence < 1:
            return refuse("a batch needs a boot_id and a sequence >= 1")
        pod = self.hub.current(pod)  # labels changed since the token was reviewed
        result = self.hub.compile(pod)
        if result.table is None:
            return refuse("no valid RoutingPolicy selects this pod; it has no team to charge")
        team = result.table.team
        for record in batch.records:
            if record.team and record.team != team:
                return refuse(
                    f"usage for team {record.team!r} refused: this pod is charged to {team!r}"
                )
        charge = Charge(pod.name, batch.boot_id, batch.sequence, list(batch.records))
        try:
            counted = await self.ledger.charge(pod.namespace, team, charge)
        except Exception as exc:
            log.warning(
                "usage batch %s#%d from %s not counted: %s",
                batch.boot_id,
                batch.sequence,
                pod.key,
                exc,
            )
            return None
        if counted.budget is None:
            outcome = "uncharged"
        else:
            outcome = "counted" if counted.counted else "duplicate"
        self._outcomes[outcome].inc()
        if counted.counted and batch.feedback and self.on_feedback and result.policy:
            try:
                self.on_feedback(pod.namespace, result.policy, list(batch.feedback))
            except Exception:
                log.exception("router feedback hook failed")
        return usage_pb2.UsageAck(boot_id=batch.boot_id, sequence=batch.sequence, accepted=True)
