"""The operator's in-memory view of the resources it compiles from.

Filled level-based by the watch handlers (every event carries the whole
object), read by the compiler through immutable ``NamespaceResources``
snapshots. Objects that fail to parse are kept out of the snapshot and
remembered with their error so that their status can say why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .resources import (
    BudgetObject,
    NamespaceResources,
    PolicyObject,
    PoolObject,
    configmap_data,
    decode_secret,
    parse_budget,
    parse_policy,
    parse_pool,
)

__all__ = ["KINDS", "LEARNED_SUFFIX", "World", "resources_from_bodies"]

KINDS = ("ModelPool", "RoutingPolicy", "TeamBudget", "Secret", "ConfigMap")
#: Suffix of the operator-owned ConfigMap holding a policy's learned feedback offsets.
LEARNED_SUFFIX = "-switchman-learned"


@dataclass
class _Namespace:
    pools: dict[str, PoolObject] = field(default_factory=dict)
    policies: dict[str, PolicyObject] = field(default_factory=dict)
    budgets: dict[str, BudgetObject] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)

    def snapshot(self) -> NamespaceResources:
        return NamespaceResources(
            pools=dict(self.pools),
            policies=dict(self.policies),
            secrets={k: dict(v) for k, v in self.secrets.items()},
            budgets=dict(self.budgets),
            configmaps={k: dict(v) for k, v in self.configmaps.items()},
        )


class World:
    """Namespaced objects by kind.

    ``version`` bumps on every change that can change a route table, i.e. on
    everything except a TeamBudget's status: tables never depend on spend, and
    at 1,000 sidecars every usage commit rewrote that status (and invalidated
    the hub's compile cache) several times a second.
    """

    def __init__(self) -> None:
        self._ns: dict[str, _Namespace] = {}
        self.parse_errors: dict[tuple[str, str, str], str] = {}
        self.version = 0

    def namespaces(self) -> list[str]:
        return sorted(self._ns)

    def resources(self, namespace: str) -> NamespaceResources:
        ns = self._ns.get(namespace)
        return ns.snapshot() if ns else NamespaceResources()

    def budget_for(self, namespace: str, team: str) -> BudgetObject | None:
        """``resources(namespace).budget_for(team)`` without copying the namespace."""
        ns = self._ns.get(namespace)
        best: BudgetObject | None = None
        for b in ns.budgets.values() if ns else ():
            if b.spec.team != team:
                continue
            if best is None or (b.created, b.name) < (best.created, best.name):
                best = b
        return best

    def upsert(self, body: Mapping[str, Any]) -> str:
        """Store one object; return its namespace. Raises KeyError for kinds we do not keep."""
        kind = str(body.get("kind"))
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        ns = self._ns.setdefault(namespace, _Namespace())
        self.parse_errors.pop((kind, namespace, name), None)
        try:
            if kind == "ModelPool":
                ns.pools[name] = parse_pool(body)
            elif kind == "RoutingPolicy":
                ns.policies[name] = parse_policy(body)
            elif kind == "TeamBudget":
                new = parse_budget(body)
                old = ns.budgets.get(name)
                ns.budgets[name] = new
                if old is not None and old.spec == new.spec and old.created == new.created:
                    return namespace  # spend moved: no route table changes
            elif kind == "Secret":
                ns.secrets[name] = decode_secret(body)
            elif kind == "ConfigMap":
                ns.configmaps[name] = configmap_data(body)
            else:
                raise KeyError(kind)
        except ValidationError as exc:
            self._drop(ns, kind, name)
            self.parse_errors[(kind, namespace, name)] = str(exc).splitlines()[0][:500]
        self.version += 1
        return namespace

    def delete(self, kind: str, namespace: str, name: str) -> None:
        ns = self._ns.get(namespace)
        if ns is not None:
            self._drop(ns, kind, name)
        self.parse_errors.pop((kind, namespace, name), None)
        self.version += 1

    def referenced_secrets(self, namespace: str) -> set[str]:
        ns = self._ns.get(namespace)
        if ns is None:
            return set()
        return {
            m.credentials.name
            for p in ns.pools.values()
            for m in p.spec.models
            if m.credentials is not None
        }

    def has_secret(self, namespace: str, name: str) -> bool:
        ns = self._ns.get(namespace)
        return ns is not None and name in ns.secrets

    def referenced_configmaps(self, namespace: str) -> set[str]:
        """Router model ConfigMaps of the namespace's policies, and their learned-offset maps."""
        ns = self._ns.get(namespace)
        if ns is None:
            return set()
        out = set()
        for name, p in ns.policies.items():
            if p.spec.router is not None:
                out.add(p.spec.router.model_ref.name)
                out.add(name + LEARNED_SUFFIX)
        return out

    def has_configmap(self, namespace: str, name: str) -> bool:
        ns = self._ns.get(namespace)
        return ns is not None and name in ns.configmaps

    @staticmethod
    def _drop(ns: _Namespace, kind: str, name: str) -> None:
        if kind == "ModelPool":
            ns.pools.pop(name, None)
        elif kind == "RoutingPolicy":
            ns.policies.pop(name, None)
        elif kind == "TeamBudget":
            ns.budgets.pop(name, None)
        elif kind == "Secret":
            ns.secrets.pop(name, None)
        elif kind == "ConfigMap":
            ns.configmaps.pop(name, None)


def resources_from_bodies(
    bodies: Iterable[Mapping[str, Any]], namespace: str
) -> NamespaceResources:
    """A snapshot built from a list of manifests (golden tests, the CLI's dry runs)."""
    world = World()
    for body in bodies:
        world.upsert(body)
    return world.resources(namespace)
