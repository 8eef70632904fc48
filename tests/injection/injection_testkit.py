"""Shared by the injection tests: the chart's template, fixed values, a JSON-patch applier."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from switchman_operator.injection import InjectionValues, Template, load_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_FILE = REPO / "charts" / "switchman" / "files" / "injection-template.yaml"
#: The test world: "labelled" carries switchman.io/injection=enabled; the operator
#: runs in "switchman-system".
LABELLED = frozenset({"labelled"})
OPERATOR_NAMESPACE = "switchman-system"
OPERATOR_CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"
VALUES = InjectionValues(operator_address="switchman-operator.switchman-system.svc:15010")


def chart_template() -> Template:
    return load_template(TEMPLATE_FILE.read_text())


def apply_patch(doc: Mapping[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 add/replace on object paths: all the webhook emits (and all we accept)."""
    out: dict[str, Any] = copy.deepcopy(dict(doc))
    for op in patch:
        assert op["op"] in ("add", "replace"), op
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"][1:].split("/")
        ]
        node = out
        for part in parents:
            node = node[part]
        if op["op"] == "replace":
            assert last in node, f"replace of a missing path {op['path']}"
        node[last] = copy.deepcopy(op["value"])
    return out
