"""The operator process as one object: watches in, pushes and status out.

``Operator.observe`` is what every watch event calls (level-based: the event
carries the whole object). It updates the World, schedules a debounced push
for the namespace and a status reconcile. The reconciler recomputes every
object's status in the changed namespaces (cross-object validity means a pool
change can break a policy) and merge-patches only what differs, posting an
event when readiness flips. RoutingPolicy sync counts are refreshed every
``status_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .conditions import desired_status, same_conditions
from .controlplane import ControlPlane
from .discovery.identity import Identifier
from .kube import Conflict, Kube, NotFound
from .learning.feedback import RouterLearner
from .metrics import OperatorMetrics
from .settings import Settings
from .tls import ServerTls
from .usage.service import FeedbackHook
from .world import World

__all__ = ["Operator"]

log = logging.getLogger(__name__)

OWNED_KINDS = ("ModelPool", "RoutingPolicy", "TeamBudget")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Operator:
    def __init__(
        self,
        settings: Settings,
        kube: Kube,
        identifier: Identifier,
        tls: ServerTls | None,
        metrics: OperatorMetrics | None = None,
        on_feedback: FeedbackHook | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.world = World()
        self.metrics = metrics or OperatorMetrics()
        # Router learning (learning/feedback.py): feedback -> offsets ConfigMap -> push.
        self.learner = RouterLearner(
            kube.core, self.world, lambda ns: self.cp.changed(ns), self._policy_uid
        )
        self.cp = ControlPlane(
            settings,
            self.world,
            identifier,
            kube,
            tls,
            self.metrics,
            on_feedback or self.learner.on_feedback,
        )
        # Last seen body per owned object: status to compare with, metadata for events.
        self.bodies: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self._dirty_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Leader election (leader/): only the leader writes conditions/events and rolls
        # budget periods over; every replica watches, serves and counts usage.
        self.leading: Callable[[], bool] = lambda: True

    # --- watch side --------------------------------------------------------

    async def observe(self, event_type: str, body: Mapping[str, Any]) -> None:
        kind = str(body.get("kind"))
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if event_type == "DELETED":
            self.world.delete(kind, ns, name)
            self.bodies.pop((kind, ns, name), None)
        else:
            before = self.world.version
            self.world.upsert(body)
            if kind in OWNED_KINDS:
                self.bodies[(kind, ns, name)] = dict(body)
            if kind == "ModelPool":
                await self._load_secrets(ns)
            if kind == "RoutingPolicy":
                await self._load_configmaps(ns)
            if self.world.version == before:  # a TeamBudget whose spend moved, nothing else
                self.cp.budget_moved(ns, str((body.get("spec") or {}).get("team") or ""))
                return
        self.cp.changed(ns)
        self.mark_dirty(ns)

    def pod_changed(self, event_type: str, body: Mapping[str, Any]) -> None:
        """A connected sidecar's pod changed: new labels may select another policy."""
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if event_type == "DELETED":
            self.cp.hub.forget_pod(ns, name)
            return
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        if self.cp.hub.relabel(ns, name, str(meta.get("uid") or ""), labels):
            log.info("pod %s/%s relabelled: its policy is selected again", ns, name)
            self.mark_dirty(ns)  # targeted/synced counts of the policies

    def wants_secret(self, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        return name in self.world.referenced_secrets(ns) or self.world.has_secret(ns, name)

    async def _load_secrets(self, namespace: str) -> None:
        """Secrets a new pool references may predate it: fetch them once."""
        for name in sorted(self.world.referenced_secrets(namespace)):
            if self.world.has_secret(namespace, name):
                continue
            try:
                body = await self.kube.get_secret(namespace, name)
            except NotFound:
                continue
            self.world.upsert({**body, "kind": "Secret"})

    def wants_configmap(self, body: Mapping[str, Any]) -> bool:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        return name in self.world.referenced_configmaps(ns) or self.world.has_configmap(ns, name)

    async def _load_configmaps(self, namespace: str) -> None:
        """A policy's router model (and learned offsets) may predate it: fetch them once."""
        for name in sorted(self.world.referenced_configmaps(namespace)):
            if self.world.has_configmap(namespace, name):
                continue
            try:
                body = await self.kube.get_configmap(namespace, name)
            except NotFound:
                continue
            self.world.upsert({**body, "kind": "ConfigMap"})

    def _policy_uid(self, namespace: str, name: str) -> str:
        body = self.bodies.get(("RoutingPolicy", namespace, name)) or {}
        return str((body.get("metadata") or {}).get("uid") or "")

    def mark_dirty(self, namespace: str) -> None:
        self._dirty.add(namespace)
        self._dirty_event.set()

    # --- status side -------------------------------------------------------

    async def reconcile_namespace(self, namespace: str) -> None:
        res = self.world.resources(namespace)
        counts = self.cp.hub.policy_counts()
        for (kind, ns, name), body in list(self.bodies.items()):
            if ns != namespace:
                continue
            parse_error = self.world.parse_errors.get((kind, ns, name))
            if parse_error is None and not self._present(kind, name, res):
                continue
            generation = int((body.get("metadata") or {}).get("generation") or 0)
            desired = desired_status(
                kind, name, res, parse_error, generation, counts, self.cp.hub.rejections
            )
            await self._write_status(kind, body, desired)

    @staticmethod
    def _present(kind: str, name: str, res: Any) -> bool:
        table = {"ModelPool": res.pools, "RoutingPolicy": res.policies, "TeamBudget": res.budgets}
        return name in table[kind]

    async def _write_status(self, kind: str, body: dict[str, Any], desired: dict[str, Any]) -> None:
        if not self.leading():
            return
        meta = body["metadata"]
        current: dict[str, Any] = body.get("status") or {}
        changed = {k: v for k, v in desired.items() if k != "conditions" and current.get(k) != v}
        old_conds = current.get("conditions")
        conds_changed = not same_conditions(old_conds, desired["conditions"])
        if not changed and not conds_changed:
            return
        patch = dict(changed)
        if conds_changed:
            old_ready = next((c for c in old_conds or [] if c.get("type") == "Ready"), None)
            new_ready = dict(desired["conditions"][0])
            flipped = old_ready is None or old_ready.get("status") != new_ready["status"]
            new_ready["lastTransitionTime"] = (
                _now() if flipped else old_ready.get("lastTransitionTime", _now())  # type: ignore[union-attr]
            )
            patch["conditions"] = [new_ready]
        try:
            written = await self.kube.merge_status(kind, meta["namespace"], meta["name"], patch)
        except (NotFound, Conflict):
            return
        self.metrics.status_writes.inc()
        body["status"] = written.get("status") or {}
        if conds_changed:
            ready = patch["conditions"][0]
            if ready["status"] == "True":
                await self.kube.event(body, "Normal", ready["reason"], f"{kind} is ready")
            else:
                await self.kube.event(body, "Warning", ready["reason"], ready["message"])

    async def _status_loop(self) -> None:
        """Reconcile dirty namespaces promptly and every namespace with sidecars periodically."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self.settings.status_interval
        while True:
            timeout = max(0.0, next_sweep - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_dirty_or_policy(), timeout)
            await asyncio.sleep(self.settings.debounce_quiet)  # let a burst settle
            self._dirty_event.clear()
            self.cp.policy_dirty.clear()
            dirty, self._dirty = self._dirty, set()
            if loop.time() >= next_sweep:
                dirty |= {ns for (_, ns, _) in self.bodies}
                next_sweep = loop.time() + self.settings.status_interval
            for ns in sorted(dirty):
                try:
                    await self.reconcile_namespace(ns)
                except Exception:
                    log.exception("status reconcile of namespace %s failed", ns)

    async def _wait_dirty_or_policy(self) -> None:
        a = asyncio.ensure_future(self._dirty_event.wait())
        b = asyncio.ensure_future(self.cp.policy_dirty.wait())
        try:
            await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            a.cancel()
            b.cancel()

    async def refresh_budget(self, namespace: str, name: str) -> None:
        """Timer: roll the period over even when no usage arrives."""
        budget = self.world.resources(namespace).budgets.get(name)
        if budget is not None and self.leading():
            await self.cp.ledger.refresh(namespace, budget.spec.team)

    def leadership_changed(self, leading: bool) -> None:
        """A new leader reconciles everything: it wrote nothing while it followed."""
        self.metrics.leader.set(int(leading))
        if leading:
            for _, ns, _ in list(self.bodies):
                self.mark_dirty(ns)

    # --- lifecycle ---------------------------------------------------------

    async def prime(self) -> None:
        """List every object once before serving: a usage batch or a sidecar arriving
        right after a restart must meet a complete World (a missing TeamBudget would
        leave usage uncharged, a missing policy would refuse it). The watches then
        replay the same objects, which is harmless: handling is level-based."""
        for kind in OWNED_KINDS:
            for ns in self.settings.namespaces or (None,):
                for body in await self.kube.list_objects(kind, ns):
                    await self.observe("ADDED", body)

    async def start(self) -> int:
        await self.prime()
        port = await self.cp.start()
        self._tasks.append(asyncio.create_task(self._status_loop(), name="status"))
        self._tasks.append(asyncio.create_task(self.learner.run(), name="router-learner"))
        return port

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.cp.stop()
