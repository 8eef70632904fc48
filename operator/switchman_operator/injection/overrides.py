"""Per-pod overrides by annotation, validated before anything is rendered.

A bad override is refused (the webhook denies the pod with every problem
listed) rather than ignored: the author asked for something specific, and a
sidecar silently started with other resources or another port is a
production surprise found much later. See docs/install.md.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .annotations import (
    ANNOTATION_LOG_LEVEL,
    ANNOTATION_PORT,
    ANNOTATION_PROXY_CPU,
    ANNOTATION_PROXY_CPU_LIMIT,
    ANNOTATION_PROXY_MEMORY,
    ANNOTATION_PROXY_MEMORY_LIMIT,
)
from .values import InjectionValues

__all__ = ["LOG_LEVELS", "apply_overrides", "parse_quantity"]

LOG_LEVELS = ("debug", "info", "warning", "error")

_QUANTITY = re.compile(
    r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[a-zA-Z]*|[eE][+-]?[0-9]+)$"
)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(text: str) -> Decimal:
    """A non-negative Kubernetes quantity ("250m", "1.5", "128Mi", "1e3") as a number."""
    m = _QUANTITY.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 100m, 0.5, 128Mi)")
    suffix = m["suffix"]
    try:
        number = Decimal(m["num"])
        if suffix[:1] in ("e", "E"):
            return number * Decimal(10) ** int(suffix[1:])
    except InvalidOperation:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None
    if suffix not in _SUFFIX:
        raise ValueError(f"{text!r} has an unknown unit {suffix!r} (use m, Mi, Gi, ...)")
    return number * _SUFFIX[suffix]


def apply_overrides(
    values: InjectionValues, annotations: Mapping[str, str]
) -> tuple[InjectionValues, list[str]]:
    """Values for one pod, and every problem found (empty when the overrides are valid)."""
    problems: list[str] = []
    changes: dict[str, Any] = {}
    for key, field_name in (
        (ANNOTATION_PROXY_CPU, "cpu_request"),
        (ANNOTATION_PROXY_CPU_LIMIT, "cpu_limit"),
        (ANNOTATION_PROXY_MEMORY, "memory_request"),
        (ANNOTATION_PROXY_MEMORY_LIMIT, "memory_limit"),
    ):
        if key in annotations:
            raw = str(annotations[key]).strip()
            try:
                parse_quantity(raw)
            except ValueError as exc:
                problems.append(f"annotation {key}: {exc}")
                continue
            changes[field_name] = raw
    if ANNOTATION_PORT in annotations:
        raw = str(annotations[ANNOTATION_PORT]).strip()
        if not raw.isdigit() or not 1024 <= int(raw) <= 65535:
            problems.append(
                f"annotation {ANNOTATION_PORT}: {raw!r} is not a port between 1024 and 65535 "
                "(the sidecar runs as non-root)"
            )
        elif int(raw) == values.admin_port:
            problems.append(
                f"annotation {ANNOTATION_PORT}: {raw} is the sidecar's admin port; pick another"
            )
        else:
            changes["port"] = int(raw)
    if ANNOTATION_LOG_LEVEL in annotations:
        raw = str(annotations[ANNOTATION_LOG_LEVEL]).strip().lower()
        if raw not in LOG_LEVELS:
            problems.append(
                f"annotation {ANNOTATION_LOG_LEVEL}: {annotations[ANNOTATION_LOG_LEVEL]!r} "
                f"is not one of {', '.join(LOG_LEVELS)}"
            )
        else:
            changes["log_level"] = raw
    out = dataclasses.replace(values, **changes)
    for what, request, limit in (
        ("cpu", out.cpu_request, out.cpu_limit),
        ("memory", out.memory_request, out.memory_limit),
    ):
        if request is None or limit is None:
            continue
        if parse_quantity(request) > parse_quantity(limit):
            problems.append(f"sidecar {what} request {request} is above its limit {limit}")
    return out, problems
