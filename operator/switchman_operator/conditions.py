"""Desired status of each resource, from the World and the hub. Pure.

One ``Ready`` condition per object (reason + message from the validators),
``observedGeneration``, and the kind-specific fields: ModelPool model health,
RoutingPolicy compiled version and sync counts. TeamBudget spend fields are the
ledger's; only its condition is computed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .compile import build_table, table_version
from .discovery.hub import Rejection
from .resources import NamespaceResources
from .validate import Problem, validate_budget, validate_policy, validate_pool

__all__ = ["desired_status", "ready_condition", "same_conditions"]


def ready_condition(problems: list[Problem], generation: int, ok_reason: str) -> dict[str, Any]:
    if problems:
        return {
            "type": "Ready",
            "status": "False",
            "reason": problems[0].reason,
            "message": "; ".join(p.message for p in problems)[:32000],
            "observedGeneration": generation,
        }
    return {
        "type": "Ready",
        "status": "True",
        "reason": ok_reason,
        "message": "",
        "observedGeneration": generation,
    }


def same_conditions(current: list[dict[str, Any]] | None, desired: list[dict[str, Any]]) -> bool:
    """Equal ignoring lastTransitionTime (which only moves when status flips)."""

    def strip(conds: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds or []]

    return strip(current) == strip(desired)


def desired_status(
    kind: str,
    name: str,
    res: NamespaceResources,
    parse_error: str | None,
    generation: int,
    counts: Mapping[str, tuple[int, int, str]],
    rejections: Mapping[str, Rejection],
) -> dict[str, Any]:
    """The status fields this operator owns for one object (merge-patched)."""
    if parse_error is not None:
        problems = [Problem("InvalidSpec", parse_error)]
        return {
            "observedGeneration": generation,
            "conditions": [ready_condition(problems, generation, "")],
        }
    if kind == "ModelPool":
        pool = res.pools[name]
        problems = validate_pool(pool, res.secrets)
        broken = {p.message.split(":", 1)[0].removeprefix("model ") for p in problems}
        return {
            "observedGeneration": generation,
            "modelCount": len(pool.spec.models),
            "readyModels": sum(1 for m in pool.spec.models if m.name not in broken),
            "models": [
                {"name": m.name, "ready": m.name not in broken}
                | (
                    {
                        "message": next(
                            p.message for p in problems if f"model {m.name}:" in p.message
                        )
                    }
                    if m.name in broken
                    else {}
                )
                for m in pool.spec.models
            ],
            "conditions": [ready_condition(problems, generation, "CredentialsFound")],
        }
    if kind == "RoutingPolicy":
        policy = res.policies[name]
        problems = validate_policy(policy, res)
        key = f"{policy.namespace}/{name}"
        version = "" if problems else table_version(build_table(policy, res))
        targeted, acked, _ = counts.get(key, (0, 0, version))
        out: dict[str, Any] = {
            "observedGeneration": generation,
            "compiledVersion": version or None,
            "targetedSidecars": targeted,
            "acknowledgedSidecars": acked,
            "synced": f"{acked}/{targeted}",
            "conditions": [ready_condition(problems, generation, "Compiled")],
        }
        rejection = rejections.get(key)
        if rejection is not None:
            out["lastRejection"] = {
                "sidecar": rejection.sidecar,
                "message": rejection.message,
                "time": rejection.time,
            }
        return out
    budget = res.budgets[name]
    problems = validate_budget(budget, res)
    return {
        "observedGeneration": generation,
        "conditions": [ready_condition(problems, generation, "Counting")],
    }
