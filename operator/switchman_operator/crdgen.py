"""Generate the CustomResourceDefinitions from the pydantic API types.

``python -m switchman_operator.crdgen OUT_DIR`` writes one YAML file per CRD.
Pydantic's JSON Schema is close to what Kubernetes wants but not the same:
Kubernetes needs *structural* schemas (no ``$ref``, no ``anyOf`` over types,
no ``title``), so references are inlined, ``Optional[X]`` becomes ``X``, and
``Literal`` enums keep their ``enum`` with an explicit type.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from .api import GROUP, VERSION
from .api.modelpool import ModelPoolSpec, ModelPoolStatus
from .api.routingpolicy import RoutingPolicySpec, RoutingPolicyStatus
from .api.teambudget import TeamBudgetSpec, TeamBudgetStatus


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[Column, ...]
    description: str


AGE = Column("Age", "date", ".metadata.creationTimestamp")

KINDS: tuple[Kind, ...] = (
    Kind(
        "ModelPool",
        "modelpools",
        ("mp", "pool"),
        ModelPoolSpec,
        ModelPoolStatus,
        (
            Column("Models", "integer", ".status.modelCount", "Models in the pool"),
            Column("Ready", "integer", ".status.readyModels", "Models that are healthy"),
            AGE,
        ),
        "The models a namespace may use: providers, endpoints, prices, credentials.",
    ),
    Kind(
        "RoutingPolicy",
        "routingpolicies",
        ("rp", "route"),
        RoutingPolicySpec,
        RoutingPolicyStatus,
        (
            Column("Team", "string", ".spec.team"),
            Column("Strategy", "string", ".spec.strategy"),
            Column("Synced", "string", ".status.synced", "Sidecars that acknowledged / targeted"),
            AGE,
        ),
        "Which pods a routing policy applies to, the team they charge, and how to route.",
    ),
    Kind(
        "TeamBudget",
        "teambudgets",
        ("tb", "budget"),
        TeamBudgetSpec,
        TeamBudgetStatus,
        (
            Column("Team", "string", ".spec.team"),
            Column("Limit", "number", ".spec.limit", "USD per period"),
            Column("Spent", "number", ".status.spent", "USD spent this period"),
            Column("Used", "string", ".status.percentUsedText", "Percent of the limit used"),
            Column("State", "string", ".status.state"),
            Column("Period", "string", ".spec.period", priority=1),
            AGE,
        ),
        "A team's spend ceiling per period, and what happens near and past it.",
    ),
)

_DROP = {"title", "discriminator"}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON Schema node into a Kubernetes structural schema."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        variants = [v for v in schema["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {schema}")
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        inner = structural({**variants[0], **rest}, defs)
        if schema.get("default") is not None:
            inner["default"] = schema["default"]
        return inner
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        elif key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields already
        elif key == "const":
            out["enum"] = [value]
        elif key == "minLength" and schema.get("type") == "array":
            out["minItems"] = value
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "exclusiveMinimum" in out and not isinstance(out["exclusiveMinimum"], bool):
        out["minimum"] = out.pop("exclusiveMinimum")
        out["exclusiveMinimum"] = True
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def build_crd(kind: Kind) -> dict[str, Any]:
    spec = openapi_schema(kind.spec)
    status = openapi_schema(kind.status)
    columns = []
    for col in kind.columns:
        entry: dict[str, Any] = {"name": col.name, "type": col.type, "jsonPath": col.json_path}
        if col.description:
            entry["description"] = col.description
        if col.priority:
            entry["priority"] = col.priority
        columns.append(entry)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{kind.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "switchman"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["switchman"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": kind.description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                        }
                    },
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = "# Generated by `make generate` from switchman_operator/api. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(kind), sort_keys=False, width=100)


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        path = out_dir / f"{GROUP}_{kind.plural}.yaml"
        path.write_text(render(kind))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write_all(Path(args[0] if args else "crds")):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
