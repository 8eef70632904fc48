"""The pydantic API types accept the samples and refuse what the CRDs refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from switchman_operator.api import ModelPoolSpec, RoutingPolicySpec, TeamBudgetSpec
from switchman_operator.crdgen import KINDS, build_crd

REPO = Path(__file__).resolve().parents[2]
SPECS = {
    "ModelPool": ModelPoolSpec,
    "RoutingPolicy": RoutingPolicySpec,
    "TeamBudget": TeamBudgetSpec,
}


def example_docs() -> list[dict[str, object]]:
    docs = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] in SPECS]
    return docs


def test_samples_cover_every_kind_and_validate() -> None:
    docs = example_docs()
    assert {d["kind"] for d in docs} == set(SPECS)
    for doc in docs:
        SPECS[str(doc["kind"])].model_validate(doc["spec"])


def test_sample_pool_has_the_four_provider_kinds() -> None:
    pool = next(d for d in example_docs() if d["kind"] == "ModelPool")
    spec = ModelPoolSpec.model_validate(pool["spec"])
    assert {m.provider for m in spec.models} >= {
        "openai",
        "anthropic",
        "gemini",
        "openai-compatible",
    }


def test_unknown_fields_and_bad_ranges_are_refused() -> None:
    with pytest.raises(ValidationError, match="stratgey"):
        RoutingPolicySpec.model_validate({"team": "t", "pools": ["p"], "stratgey": "cost"})
    with pytest.raises(ValidationError, match="limit"):
        TeamBudgetSpec.model_validate({"team": "t", "limit": 0})
    with pytest.raises(ValidationError, match=r"qualityBar|quality_bar"):
        RoutingPolicySpec.model_validate({"team": "t", "pools": ["p"], "qualityBar": 1.5})


def walk(schema: object) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if isinstance(schema, dict):
        out.append(schema)
        for value in schema.values():
            out += walk(value)
    elif isinstance(schema, list):
        for value in schema:
            out += walk(value)
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_generated_schema_is_structural(kind: object) -> None:
    crd = build_crd(kind)  # type: ignore[arg-type]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    nodes = walk(version["schema"]["openAPIV3Schema"])
    for node in nodes:
        assert "$ref" not in node and "anyOf" not in node and "title" not in node
        if "properties" in node or "items" in node:
            assert node.get("type") in ("object", "array"), node
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[-1] == "Age"
