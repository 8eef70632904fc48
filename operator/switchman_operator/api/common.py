"""Types shared by the Switchman custom resources.

The pydantic models in this package are the single source of the CRD schemas:
``python -m switchman_operator.crdgen`` turns them into crds/*.yaml and the
chart's CRDs. Field-level constraints (patterns, ranges, enums) become OpenAPI
keywords; cross-field rules are CEL ``x-kubernetes-validations`` attached with
``cel()`` so that ``kubectl apply`` rejects bad input before the operator sees
it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

GROUP = "switchman.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

#: A DNS-1123 label: names of models, pools, teams.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
#: A Go-style duration such as 500ms, 30s, 2m.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
#: A list of objects keyed by ``name``: the API server enforces unique names.
LIST_MAP: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One CEL validation rule (``x-kubernetes-validations`` entry)."""
    out: JsonDict = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class Schema(BaseModel):
    """Base: camelCase on the wire, unknown fields rejected, enums as values."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )


class Condition(Schema):
    """A metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class SecretKeyRef(Schema):
    """A key in a Secret in the resource's own namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class ConfigMapKeyRef(Schema):
    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")


class LabelSelectorRequirement(Schema):
    key: str = Field(min_length=1, max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(Schema):
    """A metav1.LabelSelector; empty selects every pod in the namespace."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class RateLimits(Schema):
    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Tokens per minute.")


class StatusBase(Schema):
    """Status fields every Switchman resource carries."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] | None = None
