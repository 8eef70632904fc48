"""Unit tests of the injection stages the golden files do not pin down one by one."""

from __future__ import annotations

from decimal import Decimal

import pytest
from injection_testkit import OPERATOR_CA, VALUES, apply_patch, chart_template

from switchman_operator.injection import (
    InjectionValues,
    TemplateError,
    ValuesError,
    apply_overrides,
    inject,
    json_patch,
    load_template,
    parse_quantity,
    render,
)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("128Mi", Decimal(128 * 2**20)),
        ("1Gi", Decimal(2**30)),
        ("1G", Decimal(10**9)),
        ("2e3", Decimal(2000)),
        ("1E-3", Decimal("0.001")),
    ],
)
def test_quantities(text: str, number: Decimal) -> None:
    assert parse_quantity(text) == number


@pytest.mark.parametrize("text", ["", "-1", "1.2.3", "64MB", "one", "1 Gi", "0x10"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match=r"quantity|unit"):
        parse_quantity(text)


def test_overrides_equal_request_and_limit_are_fine() -> None:
    values, problems = apply_overrides(
        VALUES, {"switchman.io/proxy-memory": "256Mi", "switchman.io/proxy-cpu-limit": "50m"}
    )
    assert problems == []
    assert (values.memory_request, values.cpu_limit) == ("256Mi", "50m")


def test_override_port_cannot_take_the_admin_port() -> None:
    _, problems = apply_overrides(VALUES, {"switchman.io/proxy-port": "15000"})
    assert problems and "admin port" in problems[0]


def test_values_are_strict() -> None:
    assert InjectionValues.from_json('{"port": 4100, "cpuLimit": null}').port == 4100
    assert InjectionValues.from_json("").port == 4000
    with pytest.raises(ValuesError, match="unknown injection values: prot"):
        InjectionValues.from_json('{"prot": 4100}')
    with pytest.raises(ValuesError, match="port must be a int"):
        InjectionValues.from_json('{"port": "4100"}')
    with pytest.raises(ValuesError, match="not JSON"):
        InjectionValues.from_json("{")
    values = InjectionValues.from_json('{"excludedNamespaces": ["infra"]}')
    assert values.excluded_namespaces == ("infra",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sidecar: [", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("sidecars: {}", "unknown keys sidecars"),
        ("sidecar: {name: x, image: '${imgae}'}", r"unknown template variable \$\{imgae\}"),
        ("sidecar: {image: x}", "sidecar must be a container with a name"),
        ("sidecar: {name: x}\nvolumes: {a: b}", "volumes must be a list"),
        ("sidecar: {name: x}\nannotations: {a: 1}", "annotations must map names to strings"),
    ],
)
def test_broken_templates_are_refused_at_load(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        load_template(text)


def test_render_rules() -> None:
    template = load_template(
        "sidecar:\n"
        "  name: p\n"
        "  port: ${port}\n"
        "  portText: ${port|string}\n"
        "  url: http://h:${port}/v1\n"
        "  limits: {cpu: '${cpuLimit}'}\n"
        "  kept: {}\n"
        "annotations: {ca: '${operatorCA}'}\n"
    )
    out = render(template, VALUES, None)
    assert out.sidecar == {
        "name": "p",
        "port": 4000,
        "portText": "4000",
        "url": "http://h:4000/v1",
        "kept": {},
    }
    assert out.annotations == {}
    assert render(template, VALUES, "PEM").annotations == {"ca": "PEM"}


def test_values_cannot_inject_structure() -> None:
    template = load_template("sidecar: {name: p, image: '${image}'}\n")
    evil = InjectionValues(image="x\nsecurityContext: {privileged: true}")
    assert render(template, evil, None).sidecar == {"name": "p", "image": evil.image}


def test_patch_adds_missing_parents() -> None:
    before = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "a"}]}}
    after = {**before, "metadata": {"annotations": {"k": "v"}}}
    patch = json_patch(before, after)
    assert patch == [{"op": "add", "path": "/metadata", "value": {"annotations": {"k": "v"}}}]
    assert apply_patch(before, patch) == after


def test_pod_without_metadata_or_env_is_injected() -> None:
    pod = {"spec": {"containers": [{"name": "app", "image": "x"}]}}
    outcome = inject(
        pod,
        "apps",
        namespace_enabled=True,
        template=chart_template(),
        values=VALUES,
        operator_ca=OPERATOR_CA,
    )
    stored = apply_patch(pod, outcome.patch)
    assert stored["spec"]["initContainers"][0]["name"] == "switchman-proxy"
    assert stored["metadata"]["annotations"]["switchman.io/status"] == "injected"
    env = {e["name"]: e["value"] for e in stored["spec"]["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:4000/v1"
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:4000"
