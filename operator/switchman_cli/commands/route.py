"""``switchman route explain``: where would this request go, and why — without sending it.

Reads a route table file (the sidecar's standalone YAML/JSON format, or a
``proxy-config`` dump's table) and runs the sidecar's own Router on a
described request, so the answer is exactly what a sidecar with that table
would decide (minus live latency and error statistics).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{what} {item!r} must look like key=value")
        out[key.strip().lower() if what == "header" else key.strip()] = value
    return out


def explain(args: argparse.Namespace) -> dict[str, Any]:
    from switchman_sidecar.routing import BudgetView, Router, RouteRequest
    from switchman_sidecar.table import load_table_file

    table = load_table_file(Path(args.table))
    if args.router_model:
        from switchman_operator.learning import read_model_file

        params = read_model_file(Path(args.router_model))
        params.cost_weight = table.router.cost_weight or params.cost_weight
        table.router.CopyFrom(params)
    prompt = args.prompt or ""
    if args.prompt_file:
        prompt = Path(args.prompt_file).read_text()
    router = Router(table, seed=0)
    request = RouteRequest(
        model=args.model,
        api=args.api,
        headers=_pairs(args.header, "header"),
        metadata=_pairs(args.metadata, "metadata"),
        prompt_text=prompt,
        input_tokens=args.input_tokens if args.input_tokens is not None else (len(prompt) + 3) // 4,
        max_output_tokens=args.max_tokens,
        needs=frozenset(args.needs or []),
        pii_types=frozenset(args.pii or []),
        budget=BudgetView(args.budget_state, args.budget_used),
        request_id=args.request_id or "",
    )
    d = router.decide(request)
    return {
        "model": d.candidates[0] if d.candidates else None,
        "candidates": d.candidates,
        "reason": d.reason,
        "rule": d.rule,
        "strategy": d.strategy,
        "score": d.score,
        "scores": d.scores,
        "task_kind": d.task_kind,
        "max_output_tokens": d.max_output_tokens,
        "cascade": None
        if d.cascade_plan is None
        else {
            "models": list(d.cascade_plan.models),
            "check": d.cascade_plan.check,
            "threshold": d.cascade_plan.threshold,
            "verifier": d.cascade_plan.verifier_model,
        },
        "ensemble": None
        if d.ensemble_plan is None
        else {"models": list(d.ensemble_plan.models), "aggregate": d.ensemble_plan.aggregate},
        "shadow_model": d.shadow_model,
        "reject": d.reject,
        "why": d.explanation,
    }


def _run(args: argparse.Namespace) -> int:
    try:
        result = explain(args)
    except (OSError, ValueError) as exc:
        print(f"switchman route explain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2 if args.pretty else None))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("route", help="inspect routing decisions")
    cmds = parser.add_subparsers(dest="route_command", metavar="SUBCOMMAND")
    ex = cmds.add_parser("explain", help="where would this request go and why")
    ex.add_argument("--table", required=True, help="route table file (YAML or JSON)")
    ex.add_argument("--model", default="auto", help="model or alias asked for (default auto)")
    ex.add_argument("--prompt", help="prompt text")
    ex.add_argument("--prompt-file", help="read the prompt from a file")
    ex.add_argument(
        "--api", default="chat", choices=["chat", "messages", "responses", "embeddings"]
    )
    ex.add_argument("--header", action="append", help="name=value (repeatable)")
    ex.add_argument("--metadata", action="append", help="key=value (repeatable)")
    ex.add_argument("--input-tokens", type=int, help="default: prompt characters / 4")
    ex.add_argument("--max-tokens", type=int, help="the client's max output tokens")
    ex.add_argument("--needs", action="append", help="tools | vision | json (repeatable)")
    ex.add_argument("--pii", action="append", help="detected entity type (repeatable)")
    ex.add_argument("--budget-used", type=float, default=0.0, help="percent of the budget used")
    ex.add_argument("--budget-state", default="Ok", choices=["Ok", "SoftLimited", "Exhausted"])
    ex.add_argument("--request-id", help="decides the shadow sample")
    ex.add_argument("--router-model", help="a `router train` model file to use as the router")
    ex.add_argument("--pretty", action="store_true")
    ex.set_defaults(handler=_run)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=usage)
