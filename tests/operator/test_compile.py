"""Properties of the compiler that the golden files show but do not name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from switchman_operator.api.common import LabelSelector
from switchman_operator.compile import compile_route_table, duration_ms, table_version
from switchman_operator.money import format_usd, to_micros
from switchman_operator.resources import PodInfo
from switchman_operator.selectors import selector_matches
from switchman_operator.validate import find_cycle, resolve_alias
from switchman_operator.world import resources_from_bodies

GOLDEN = Path(__file__).parent / "golden"


def load(case: str) -> tuple[PodInfo, list[dict[str, object]]]:
    doc = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    p = doc["pod"]
    return PodInfo(p["namespace"], p["name"], p.get("labels") or {}), doc["objects"]


def test_only_own_credentials_reach_the_table() -> None:
    pod, objects = load("least-privilege")
    table = compile_route_table(pod, resources_from_bodies(objects, pod.namespace)).table
    assert table is not None
    blob = table.SerializeToString()
    assert b"sk-web" in blob
    assert b"sk-ml-secret" not in blob and b"sk-other-ns" not in blob
    assert {m.name for m in table.models} == {"mini", "haiku"}


def test_version_changes_with_content_and_only_with_content() -> None:
    pod, objects = load("least-privilege")
    res = resources_from_bodies(objects, pod.namespace)
    first = compile_route_table(pod, res).table
    again = compile_route_table(pod, res).table
    assert first is not None and again is not None
    assert first.version == again.version == table_version(first)
    objects[0]["stringData"] = {"openai": "sk-rotated", "anthropic": "sk-ant-web"}
    rotated = compile_route_table(pod, resources_from_bodies(objects, pod.namespace)).table
    assert rotated is not None and rotated.version != first.version


def test_pod_in_other_namespace_gets_nothing() -> None:
    _pod, objects = load("least-privilege")
    res = resources_from_bodies(objects, "shop")
    stranger = PodInfo("other", "web-1", {"app": "web"})
    assert compile_route_table(stranger, res).table is None


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (None, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_selector(
    selector: dict[str, object] | None, labels: dict[str, str], expected: bool
) -> None:
    sel = LabelSelector.model_validate(selector) if selector is not None else None
    assert selector_matches(sel, labels) is expected


def test_durations() -> None:
    assert duration_ms("1m30s") == 90_000
    assert duration_ms("250ms") == 250
    assert duration_ms("1.5s") == 1500
    with pytest.raises(ValueError):
        duration_ms("5 s")


def test_cycles_and_aliases() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"]}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert resolve_alias("best", {"best": "top", "top": "m"}, ["m"]) == "m"
    assert resolve_alias("x", {"x": "y", "y": "x"}, ["m"]) is None


def test_money_is_exact_to_the_micro() -> None:
    assert to_micros(0.000123) == 123
    assert to_micros(2.5e-05) == 25
    assert sum(to_micros(0.1) for _ in range(10)) == 1_000_000
    assert format_usd(1_234_567) == "$1.234567"
    with pytest.raises(ValueError):
        to_micros(float("nan"))
