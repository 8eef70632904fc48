"""kopf registrations: thin, level-based; everything happens in ``Operator``.

Only watch-event handlers and a timer are used: they need no per-object
bookkeeping annotations, are replayed in full on every (re)start, and make
each replica's in-memory World complete on its own.
"""

from __future__ import annotations

from typing import Any

import kopf

from .api import GROUP, VERSION
from .app import Operator

__all__ = ["register"]

PLURALS = (
    ("ModelPool", "modelpools"),
    ("RoutingPolicy", "routingpolicies"),
    ("TeamBudget", "teambudgets"),
)


def register(registry: kopf.OperatorRegistry, op: Operator) -> None:
    kopf.on.login(registry=registry)(kopf.login_via_client)

    for kind, plural in PLURALS:
        kopf.on.event(GROUP, VERSION, plural, registry=registry, id=f"watch-{plural}")(
            _observer(op, kind)
        )

    def wanted(body: Any, **_: Any) -> bool:
        return op.wants_secret(body)

    kopf.on.event("", "v1", "secrets", registry=registry, when=wanted, id="watch-secrets")(
        _observer(op, "Secret")
    )

    def wanted_configmap(body: Any, **_: Any) -> bool:
        return op.wants_configmap(body)

    # Router models (RoutingPolicy spec.router.modelRef) and the learned offsets.
    kopf.on.event(
        "", "v1", "configmaps", registry=registry, when=wanted_configmap, id="watch-configmaps"
    )(_observer(op, "ConfigMap"))

    # Labels of connected sidecars' pods: a relabelled pod is re-selected at once rather
    # than at its next reconnect. Events of other pods are dropped by the filter.
    def connected_pod(body: Any, **_: Any) -> bool:
        meta = body.get("metadata") or {}
        return op.cp.hub.watches(str(meta.get("namespace", "")), str(meta.get("name", "")))

    @kopf.on.event("", "v1", "pods", registry=registry, when=connected_pod, id="watch-pods")
    async def pod_event(**kwargs: Any) -> None:
        op.pod_changed(str(kwargs["event"].get("type") or "MODIFIED"), kwargs["body"])

    @kopf.timer(
        GROUP,
        VERSION,
        "teambudgets",
        registry=registry,
        interval=op.settings.budget_refresh_interval,
        idle=None,
        id="budget-period",
    )
    async def budget_period(**kwargs: Any) -> None:
        meta = kwargs["body"].get("metadata") or {}
        await op.refresh_budget(str(meta.get("namespace")), str(meta.get("name")))


def _observer(op: Operator, kind: str) -> Any:
    async def observe(**kwargs: Any) -> None:
        event_type = str(kwargs["event"].get("type") or "MODIFIED")
        await op.observe(event_type, {**kwargs["body"], "kind": kind})

    return observe
