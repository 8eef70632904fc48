"""Validation beyond the OpenAPI schema: what needs other objects or a CEL parser.

The API server already rejects malformed fields and single-object CEL rules.
What it cannot know: whether a rule's CEL expression parses, whether the pools,
models, aliases and Secrets a policy names exist, whether fallback chains loop.
Each finding is a ``Problem`` (a condition reason plus a message); an empty
list means Ready. Pure: the caller supplies the namespace's objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cel

from .learning.policy import model_from_configmaps
from .resources import BudgetObject, NamespaceResources, PolicyObject, PoolObject

__all__ = [
    "Problem",
    "find_cycle",
    "policy_model_names",
    "resolve_alias",
    "validate_budget",
    "validate_policy",
    "validate_pool",
]

#: Longest alias chain followed before giving up (a -> b -> c ...).
MAX_ALIAS_DEPTH = 8
#: The model name that asks the sidecar's router to choose (docs/routing.md).
ROUTER_CHOICE = "auto"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a resource is not Ready: ``reason`` is CamelCase, ``message`` says what to fix."""

    reason: str
    message: str


def validate_pool(pool: PoolObject, secrets: Mapping[str, Mapping[str, str]]) -> list[Problem]:
    problems: list[Problem] = []
    for model in pool.spec.models:
        ref = model.credentials
        if ref is None:
            continue
        if ref.name not in secrets:
            problems.append(
                Problem("SecretNotFound", f"model {model.name}: Secret {ref.name} not found")
            )
        elif ref.key not in secrets[ref.name]:
            problems.append(
                Problem(
                    "SecretKeyNotFound",
                    f"model {model.name}: Secret {ref.name} has no key {ref.key}",
                )
            )
    return problems


def policy_model_names(policy: PolicyObject, pools: Mapping[str, PoolObject]) -> dict[str, str]:
    """Logical model name -> pool name, first pool in the policy's order winning."""
    names: dict[str, str] = {}
    for pool_name in policy.spec.pools:
        pool = pools.get(pool_name)
        if pool is None:
            continue
        for model in pool.spec.models:
            names.setdefault(model.name, pool_name)
    return names


def resolve_alias(name: str, aliases: Mapping[str, str], models: Iterable[str]) -> str | None:
    """Follow aliases to a model name; None when it ends nowhere or loops."""
    known = set(models)
    seen: set[str] = set()
    current = name
    for _ in range(MAX_ALIAS_DEPTH + 1):
        if current in known:
            return current
        if current in seen or current not in aliases:
            return None
        seen.add(current)
        current = aliases[current]
    return None


def find_cycle(edges: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A cycle in a directed graph as a path ``[a, b, ..., a]``, or None."""
    white, grey, black = 0, 1, 2
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in edges.get(node, ()):
            state = colour.get(nxt, white)
            if state == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if state == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(edges):
        if colour.get(node, white) == white:
            found = visit(node)
            if found:
                return found
    return None


def validate_policy(policy: PolicyObject, res: NamespaceResources) -> list[Problem]:
    spec = policy.spec
    problems: list[Problem] = []
    for pool_name in spec.pools:
        if pool_name not in res.pools:
            problems.append(Problem("PoolNotFound", f"ModelPool {pool_name} not found"))
    models = policy_model_names(policy, res.pools)
    aliases = dict(spec.aliases or {})

    def check_ref(what: str, name: str | None) -> None:
        if name and resolve_alias(name, aliases, models) is None:
            problems.append(
                Problem("ModelNotFound", f"{what}: {name!r} is not a model or alias of the pools")
            )

    # An alias may end at "auto": the router chooses among the policy's models.
    alias_targets = [*models, ROUTER_CHOICE]
    for alias, target in sorted(aliases.items()):
        if alias in models:
            problems.append(Problem("AliasShadowsModel", f"alias {alias!r} hides model {alias!r}"))
        elif resolve_alias(alias, aliases, alias_targets) is None:
            problems.append(
                Problem("AliasUnresolved", f"alias {alias!r} -> {target!r} does not reach a model")
            )
    for rule in spec.rules or []:
        try:
            cel.compile(rule.when)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0][:300]
            problems.append(Problem("InvalidRule", f"rule {rule.name}: {first}"))
        check_ref(f"rule {rule.name} routeTo", rule.route_to)
        for m in rule.allowed_models or []:
            check_ref(f"rule {rule.name} allowedModels", m)
        if rule.ensemble:
            for m in rule.ensemble.models:
                check_ref(f"rule {rule.name} ensemble", m)
            check_ref(f"rule {rule.name} ensemble judge", rule.ensemble.judge_model)
    edges: dict[str, list[str]] = {}
    for chain in spec.fallbacks or []:
        check_ref("fallback", chain.model)
        for m in chain.to:
            check_ref(f"fallback of {chain.model}", m)
        src = resolve_alias(chain.model, aliases, models) or chain.model
        edges.setdefault(src, []).extend(resolve_alias(m, aliases, models) or m for m in chain.to)
    cycle = find_cycle(edges)
    if cycle:
        problems.append(Problem("FallbackCycle", "fallback chain loops: " + " -> ".join(cycle)))
    if spec.cascade:
        for m in spec.cascade.models:
            check_ref("cascade", m)
        check_ref("cascade verifier", spec.cascade.verifier_model)
    if spec.shadow:
        check_ref("shadow", spec.shadow.model)
    if spec.router is not None:
        ref = spec.router.model_ref
        found = model_from_configmaps(res.configmaps, ref.name, ref.key)
        if isinstance(found, str):
            missing = found.endswith("not found") or " has no key " in found
            reason = "RouterModelNotFound" if missing else "InvalidRouterModel"
            problems.append(Problem(reason, f"router modelRef: {found}"))
    # Credentials of every model the policy hands out must be readable.
    for model_name, pool_name in sorted(models.items()):
        pool = res.pools[pool_name]
        for problem in validate_pool(pool, res.secrets):
            if problem.message.startswith(f"model {model_name}:"):
                problems.append(Problem(problem.reason, f"pool {pool_name}: {problem.message}"))
    return problems


def validate_budget(budget: BudgetObject, res: NamespaceResources) -> list[Problem]:
    problems: list[Problem] = []
    rivals = sorted(
        (b.created, b.name)
        for b in res.budgets.values()
        if b.spec.team == budget.spec.team and b.name != budget.name
    )
    if rivals and min(rivals) < (budget.created, budget.name):
        problems.append(
            Problem(
                "DuplicateTeam",
                f"TeamBudget {min(rivals)[1]} already budgets team {budget.spec.team}; "
                "usage is charged there",
            )
        )
    if budget.spec.downgrade_model:
        names = {m.name for p in res.pools.values() for m in p.spec.models}
        policy_aliases = {
            a
            for p in res.policies.values()
            if p.spec.team == budget.spec.team
            for a in (p.spec.aliases or {})
        }
        if budget.spec.downgrade_model not in names | policy_aliases:
            problems.append(
                Problem(
                    "ModelNotFound",
                    f"downgradeModel {budget.spec.downgrade_model!r} is in no ModelPool "
                    "of this namespace",
                )
            )
    return problems
