"""Feedback → learned offsets → a new route table: the operator's learning loop.

``UsageService`` hands each counted batch's ``Feedback`` to ``on_feedback``
(its ``FeedbackHook``). For a policy whose router sets ``learnFromFeedback``
the feedback is queued; a single worker then, per policy:

1. reads the operator-owned ConfigMap ``<policy>-switchman-learned`` (the
   durable state: per (model, task) counts, sums and offsets);
2. applies ``update_router`` (pure) with the policy's priors — the trained
   model's ``prior/<model>/<task>``, else the pools' declared quality;
3. writes the ConfigMap back with the read ``resourceVersion`` (creates it
   owned by the RoutingPolicy, so it is garbage-collected with it); on a
   conflict (another replica learned meanwhile) it re-reads and re-applies;
4. puts the new state into the World and marks the namespace changed: the
   compiler merges the offsets into the table and the sidecars get it.

Why a ConfigMap and not the policy's status: status is rewritten by the
reconciler and is not meant as the input of a compile; a ConfigMap is plain
data every replica already watches, survives restarts, and a user can read
(or delete, to forget) it. Feedback reaches the learner at most once: a batch
is handed over only when it is first counted, and feedback queued when the
process dies is lost (it is advisory; new feedback keeps arriving).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from switchman_protocol.v1 import routes_pb2, usage_pb2

from ..api import GROUP, VERSION
from ..kube import Conflict, NotFound, _call
from ..resources import NamespaceResources, PolicyObject
from ..world import LEARNED_SUFFIX, World
from .online import update_router
from .policy import decode_offsets, encode_offsets, model_from_configmaps

__all__ = ["RouterLearner", "priors_for"]

log = logging.getLogger(__name__)

#: Feedback items queued per policy before new ones are dropped (the worker is behind).
MAX_PENDING = 10_000
#: Read-modify-write attempts per flush before the feedback is dropped.
MAX_ATTEMPTS = 5


def priors_for(policy: PolicyObject, res: NamespaceResources) -> dict[str, dict[str, float]]:
    """Declared quality of the policy's pool models: model -> task -> expected success."""
    out: dict[str, dict[str, float]] = {}
    for pool_name in policy.spec.pools:
        pool = res.pools.get(pool_name)
        if pool is None:
            continue
        for m in pool.spec.models:
            if m.quality is None or m.name in out:
                continue
            by_task = dict(m.quality.by_task or {})
            by_task["*"] = m.quality.overall
            out[m.name] = by_task
    return out


class RouterLearner:
    """Owns the pending feedback and the worker that turns it into table updates."""

    def __init__(
        self,
        core: Any,
        world: World,
        changed: Callable[[str], None],
        owner_uid: Callable[[str, str], str] = lambda ns, name: "",
    ) -> None:
        self.core = core  # kubernetes.client.CoreV1Api
        self.world = world
        self.changed = changed
        self.owner_uid = owner_uid
        self._pending: dict[tuple[str, str], list[usage_pb2.Feedback]] = {}
        self._wake = asyncio.Event()
        self.applied = 0
        self.dropped = 0
        self.updates = 0

    # the hook (sync, on the usage stream's task) ---------------------------

    def on_feedback(
        self, namespace: str, policy_key: str, feedback: Sequence[usage_pb2.Feedback]
    ) -> None:
        name = policy_key.rpartition("/")[2]
        policy = self.world.resources(namespace).policies.get(name)
        router = policy.spec.router if policy is not None else None
        if router is None or not router.learn_from_feedback:
            return
        queue = self._pending.setdefault((namespace, name), [])
        room = MAX_PENDING - len(queue)
        if room < len(feedback):
            self.dropped += len(feedback) - max(room, 0)
            log.warning("router learner behind: dropped feedback for %s", policy_key)
        queue.extend(list(feedback)[: max(room, 0)])
        self._wake.set()

    # the worker -------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Apply everything queued now (also called by tests)."""
        while self._pending:
            (namespace, name), feedback = self._pending.popitem()
            try:
                await self._apply(namespace, name, feedback)
            except Exception:
                self.dropped += len(feedback)
                log.exception("router learner: feedback for %s/%s dropped", namespace, name)

    async def _apply(self, namespace: str, name: str, feedback: list[usage_pb2.Feedback]) -> None:
        cm_name = name + LEARNED_SUFFIX
        for _ in range(MAX_ATTEMPTS):
            res = self.world.resources(namespace)
            policy = res.policies.get(name)
            if policy is None or policy.spec.router is None:
                return
            try:
                body: dict[str, Any] | None = await asyncio.to_thread(
                    _call, self.core.read_namespaced_config_map, cm_name, namespace
                )
            except NotFound:
                body = None
            params = routes_pb2.RouterParams()
            ref = policy.spec.router.model_ref
            model = model_from_configmaps(res.configmaps, ref.name, ref.key)
            if not isinstance(model, str):
                for key, value in model.learned.params.items():
                    if key.startswith("prior/"):
                        params.learned.params[key] = value
            params.learned.params.update(decode_offsets((body or {}).get("data")))
            new = update_router(params, [], feedback, priors_for(policy, res))
            data = encode_offsets(dict(new.learned.params))
            try:
                written = await self._write(namespace, cm_name, name, body, data)
            except Conflict:
                continue  # another replica wrote meanwhile: re-read, re-apply
            self.world.upsert({**written, "kind": "ConfigMap"})
            self.changed(namespace)
            self.applied += len(feedback)
            self.updates += 1
            return
        raise RuntimeError(f"{MAX_ATTEMPTS} conflicting writes of ConfigMap {cm_name}")

    async def _write(
        self,
        namespace: str,
        cm_name: str,
        policy: str,
        current: dict[str, Any] | None,
        data: dict[str, str],
    ) -> dict[str, Any]:
        if current is not None:
            body = {**current, "data": data}
            return await asyncio.to_thread(
                _call, self.core.replace_namespaced_config_map, cm_name, namespace, body
            )
        meta: dict[str, Any] = {
            "name": cm_name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "switchman", "switchman.io/policy": policy},
        }
        uid = self.owner_uid(namespace, policy)
        if uid:
            meta["ownerReferences"] = [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "RoutingPolicy",
                    "name": policy,
                    "uid": uid,
                }
            ]
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
        return await asyncio.to_thread(
            _call, self.core.create_namespaced_config_map, namespace, body
        )
