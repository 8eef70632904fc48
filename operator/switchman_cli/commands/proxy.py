"""``switchman proxy-status`` and ``switchman proxy-config POD`` (like istioctl's).

Both read the operator's admin port (``/debug/proxy-status``,
``/debug/proxy-config``). Every replica serves its own streams, so with more
than one replica pass each admin URL (comma-separated or ``--operator`` more
than once) and the rows are merged. In a cluster:
``kubectl -n switchman-system port-forward deploy/switchman-operator 15014``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["register"]

DEFAULT_ADMIN = "http://127.0.0.1:15014"


def _operators(args: argparse.Namespace) -> list[str]:
    raw = args.operator or [os.environ.get("SWITCHMAN_OPERATOR_ADMIN", DEFAULT_ADMIN)]
    return [u.rstrip("/") for item in raw for u in item.split(",") if u]


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - admin URL from the user
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    seconds = max(0, int(dt.datetime.now(dt.UTC).timestamp() - ts))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def render_status(rows: list[dict[str, Any]]) -> str:
    header = ["NAME", "TEAM", "POLICY", "ROUTES", "BUDGET", "VERSION", "LAST ACK", "REPLICA"]
    table = [header]
    for r in rows:
        routes = r["routes"]
        state = routes["state"] + (" (NACK)" if routes.get("nack") else "")
        table.append(
            [
                f"{r['pod']}.{r['namespace']}",
                r.get("team") or "-",
                r.get("policy") or "-",
                state,
                r["budget"]["state"],
                r.get("version") or "-",
                _ago(routes.get("lastAck")),
                r.get("replica", "-"),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def proxy_status(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    failed = False
    for base in _operators(args):
        try:
            _, body = _get(f"{base}/debug/proxy-status")
        except (OSError, ValueError) as exc:
            print(f"switchman: cannot reach operator at {base}: {exc}", file=sys.stderr)
            failed = True
            continue
        for row in body.get("sidecars", []):
            row["replica"] = body.get("replica", base)
            rows.append(row)
    if args.namespace:
        rows = [r for r in rows if r["namespace"] == args.namespace]
    rows.sort(key=lambda r: (r["namespace"], r["pod"]))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(render_status(rows))
    return 1 if failed and not rows else 0


def proxy_config(args: argparse.Namespace) -> int:
    pod, _, ns = args.pod.partition(".")
    namespace = ns or args.namespace or "default"
    query = urllib.parse.urlencode({"namespace": namespace, "pod": pod})
    errors = []
    for base in _operators(args):
        try:
            code, body = _get(f"{base}/debug/proxy-config?{query}")
        except (OSError, ValueError) as exc:
            errors.append(f"{base}: {exc}")
            continue
        if code == 200:
            print(json.dumps(body, indent=2))
            return 0
        errors.append(body.get("error", f"{base}: HTTP {code}"))
    print("switchman: " + "; ".join(errors), file=sys.stderr)
    return 1


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--operator",
        action="append",
        help=f"operator admin URL(s) (default $SWITCHMAN_OPERATOR_ADMIN or {DEFAULT_ADMIN})",
    )
    common.add_argument("-n", "--namespace", help="only this namespace")
    p = subparsers.add_parser(
        "proxy-status", parents=[common], help="connected sidecars and their sync state"
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(handler=proxy_status)
    c = subparsers.add_parser(
        "proxy-config", parents=[common], help="the route table a pod holds (secrets redacted)"
    )
    c.add_argument("pod", help="POD or POD.NAMESPACE")
    c.set_defaults(handler=proxy_config)
