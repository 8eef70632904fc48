"""The CRDs install, the samples apply, bad resources are refused at apply time."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

from cluster.harness import REPO, Cluster

EXAMPLES = REPO / "examples"


def apply_yaml(cluster: Cluster, namespace: str, manifest: str) -> tuple[int, str]:
    proc = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=textwrap.dedent(manifest), check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def samples_in(namespace: str) -> str:
    """The example manifests, moved into the test's namespace."""
    docs = []
    for name in ("modelpool.yaml", "routingpolicy.yaml", "teambudget.yaml"):
        for doc in yaml.safe_load_all((EXAMPLES / name).read_text()):
            doc["metadata"]["namespace"] = namespace
            docs.append(doc)
    return yaml.safe_dump_all(docs)


def test_crds_are_established_with_short_names(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources", "--api-group=switchman.io", "-o", "wide").stdout
    for plural, short in (("modelpools", "mp"), ("routingpolicies", "rp"), ("teambudgets", "tb")):
        line = next(row for row in out.splitlines() if row.startswith(plural))
        assert short in line and "true" in line  # namespaced


def test_samples_apply_and_print_columns(cluster: Cluster, namespace: str) -> None:
    code, out = apply_yaml(cluster, namespace, samples_in(namespace))
    assert code == 0, out
    assert "modelpool.switchman.io/general created" in out
    budgets = cluster.kubectl("get", "teambudgets", "-n", namespace).stdout
    assert budgets.split("\n")[0].split() == [
        "NAME",
        "TEAM",
        "LIMIT",
        "SPENT",
        "USED",
        "STATE",
        "AGE",
    ]
    assert budgets.split("\n")[1].split()[:3] == ["checkout", "checkout", "500"]
    policies = cluster.kubectl("get", "rp", "-n", namespace).stdout
    assert policies.split("\n")[0].split() == ["NAME", "TEAM", "STRATEGY", "SYNCED", "AGE"]
    assert policies.split("\n")[1].split()[:3] == ["checkout-api", "checkout", "balanced"]
    pools = cluster.kubectl("get", "modelpools", "-n", namespace).stdout
    assert pools.split("\n")[0].split() == ["NAME", "MODELS", "READY", "AGE"]
    # Defaults from the schema are filled in by the API server.
    pool = json.loads(cluster.kubectl("get", "mp", "general", "-n", namespace, "-o", "json").stdout)
    assert {m["weight"] for m in pool["spec"]["models"]} == {1}


def test_status_subresource_feeds_printer_columns(cluster: Cluster, namespace: str) -> None:
    code, out = apply_yaml(cluster, namespace, samples_in(namespace))
    assert code == 0, out
    status = {
        "status": {"spent": 123.5, "percentUsed": 24.7, "percentUsedText": "24.7%", "state": "Ok"}
    }
    cluster.kubectl(
        "patch",
        "teambudget",
        "checkout",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    row = cluster.kubectl("get", "tb", "checkout", "-n", namespace, "--no-headers").stdout.split()
    assert row[:6] == ["checkout", "checkout", "500", "123.5", "24.7%", "Ok"]
    # Spec writes do not touch status and vice versa.
    spec_patch = json.dumps({"spec": {"limit": 600}})
    cluster.kubectl("patch", "tb", "checkout", "-n", namespace, "--type=merge", "-p", spec_patch)
    row = cluster.kubectl("get", "tb", "checkout", "-n", namespace, "--no-headers").stdout.split()
    assert row[2:4] == ["600", "123.5"]


BAD = {
    "budget-missing-limit": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: TeamBudget
        metadata: {name: b}
        spec: {team: t}
        """,
        "spec.limit: Required value",
    ),
    "budget-negative-limit": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: TeamBudget
        metadata: {name: b}
        spec: {team: t, limit: -5}
        """,
        "spec.limit",
    ),
    "budget-bad-period": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: TeamBudget
        metadata: {name: b}
        spec: {team: t, limit: 5, period: fortnight}
        """,
        'Unsupported value: "fortnight"',
    ),
    "budget-downgrade-without-model": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: TeamBudget
        metadata: {name: b}
        spec: {team: t, limit: 5, hardAction: downgrade}
        """,
        "downgradeModel is required when an action is downgrade",
    ),
    "pool-azure-without-endpoint": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: ModelPool
        metadata: {name: p}
        spec:
          models:
            - name: m
              provider: azure-openai
              model: gpt-4o
              apiVersion: "2024-10-21"
              credentials: {name: s, key: k}
              pricing: {inputPerMTok: 1, outputPerMTok: 2}
              contextWindow: 1000
        """,
        "endpoint is required for azure-openai and openai-compatible models",
    ),
    "pool-duplicate-model-names": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: ModelPool
        metadata: {name: p}
        spec:
          models:
            - {name: m, provider: openai-compatible, model: a, endpoint: "http://x",
               pricing: {inputPerMTok: 1, outputPerMTok: 2}, contextWindow: 1000}
            - {name: m, provider: openai-compatible, model: b, endpoint: "http://y",
               pricing: {inputPerMTok: 1, outputPerMTok: 2}, contextWindow: 1000}
        """,
        "Duplicate value",
    ),
    "pool-cached-price-above-input": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: ModelPool
        metadata: {name: p}
        spec:
          models:
            - {name: m, provider: openai-compatible, model: a, endpoint: "http://x",
               pricing: {inputPerMTok: 1, cachedInputPerMTok: 2, outputPerMTok: 2},
               contextWindow: 1000}
        """,
        "cachedInputPerMTok must not exceed inputPerMTok",
    ),
    "pool-negative-price": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: ModelPool
        metadata: {name: p}
        spec:
          models:
            - {name: m, provider: openai-compatible, model: a, endpoint: "http://x",
               pricing: {inputPerMTok: -1, outputPerMTok: 2}, contextWindow: 1000}
        """,
        "spec.models[0].pricing.inputPerMTok: Invalid value: -1: "
        "spec.models[0].pricing.inputPerMTok in body should be greater than or equal to 0",
    ),
    "pool-unknown-provider": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: ModelPool
        metadata: {name: p}
        spec:
          models:
            - {name: m, provider: bedrock, model: a,
               pricing: {inputPerMTok: 1, outputPerMTok: 2}, contextWindow: 1000}
        """,
        'Unsupported value: "bedrock"',
    ),
    "policy-rule-without-action": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: RoutingPolicy
        metadata: {name: r}
        spec:
          team: t
          pools: [p]
          rules: [{name: x, when: "true"}]
        """,
        "a rule needs an action",
    ),
    "policy-bad-strategy": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: RoutingPolicy
        metadata: {name: r}
        spec: {team: t, pools: [p], strategy: cheapest}
        """,
        'Unsupported value: "cheapest"',
    ),
    "policy-bad-duration": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: RoutingPolicy
        metadata: {name: r}
        spec: {team: t, pools: [p], retries: {perTryTimeout: soon}}
        """,
        "spec.retries.perTryTimeout",
    ),
    "policy-unknown-field": (
        """
        apiVersion: switchman.io/v1alpha1
        kind: RoutingPolicy
        metadata: {name: r}
        spec: {team: t, pools: [p], stratgey: cost}
        """,
        'unknown field "spec.stratgey"',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_resources_are_rejected_with_a_clear_message(
    cluster: Cluster, namespace: str, case: str
) -> None:
    manifest, expected = BAD[case]
    code, out = apply_yaml(cluster, namespace, manifest)
    assert code != 0, out
    assert expected in out, out
    assert "created" not in out
