"""The learning loop end to end (issue #6): a router model from a ConfigMap, ratings
through the sidecar's feedback API, the real gRPC usage stream, the operator's
online update, a pushed table, and routing that moves away from a failing model.

Real processes: ``switchman-operator`` on the local control plane, one
``switchman-sidecar`` with a bound token, the fake upstream as the only
provider; the app is the official openai SDK, ratings are POSTed with httpx.
"""

from __future__ import annotations

import gzip
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from test_operator import Proc, World, http_json, start_fake, wait_until, write_tls_files

from cluster.harness import Cluster, free_port

MATH = "What is 12 * 7? Compute the product."
CHAT = "Tell me a joke about cats"


def router_model() -> str:
    """A tiny trained-router file: p(cheap) = sigmoid(1) = 0.73, p(strong) = sigmoid(2) = 0.88
    on every prompt, so with a quality bar of 0.6 the cheaper model wins until feedback
    moves its math offset. Priors are the heads' own predictions, as `router train` writes."""
    params = {
        "kind": "learned",
        "learned": {
            "featurizer": "hash-v1",
            "featureDim": 8,
            "heads": [
                {"model": "cheap", "weights": [0.0] * 8, "bias": 1.0, "meanOutputTokens": 50},
                {"model": "strong", "weights": [0.0] * 8, "bias": 2.0, "meanOutputTokens": 50},
            ],
            "params": {"prior/cheap/*": 0.731, "prior/strong/*": 0.881},
        },
    }
    return json.dumps({"format": "switchman-router/v1", "params": params})


def manifests(namespace: str, fake_url: str) -> list[dict[str, Any]]:
    def model(name: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "openai-compatible",
            "model": f"fake-{name}",
            "endpoint": f"{fake_url}/v1",
            "credentials": {"name": "keys", "key": "fake"},
            "pricing": {"inputPerMTok": price, "outputPerMTok": price * 4},
            "contextWindow": 128000,
        }

    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys", "namespace": namespace},
            "stringData": {"fake": "sk-e2e-secret-key"},
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "ModelPool",
            "metadata": {"name": "pool", "namespace": namespace},
            "spec": {"models": [model("cheap", 0.1), model("strong", 5.0)]},
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "RoutingPolicy",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "team": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "pools": ["pool"],
                "aliases": {"smart": "auto"},
                "router": {
                    "modelRef": {"name": "router", "key": "model.json"},
                    "qualityBar": 0.6,
                    "learnFromFeedback": True,
                },
            },
        },
        {
            "apiVersion": "switchman.io/v1alpha1",
            "kind": "TeamBudget",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"team": "web", "period": "month", "limit": 100},
        },
    ]


@pytest.fixture
def world(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[World]:
    procs: list[Proc] = []
    fake, url = start_fake(tmp_path)
    procs.append(fake)
    files = write_tls_files(tmp_path)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests(namespace, url)))
    w = World(cluster, namespace, tmp_path, url, free_port(), free_port(), files, procs)
    try:
        yield w
    finally:
        for proc in reversed(procs):
            proc.kill(signal.SIGTERM)


def policy_ready(world: World) -> dict[str, Any]:
    out = world.cluster.kubectl(
        "get", "routingpolicy", "web", "-n", world.namespace, "-o", "json", check=False
    )
    if out.returncode != 0:
        return {}
    status = json.loads(out.stdout).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})


def ask(client: openai.OpenAI, text: str) -> tuple[str, str]:
    """(x-switchman-model, x-switchman-request-id) of one answer to ``smart`` (= auto)."""
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": text}], timeout=10
    )
    assert raw.parse().choices[0].message.content
    return raw.headers["x-switchman-model"], raw.headers["x-switchman-request-id"]


def learned(world: World) -> dict[str, Any]:
    out = world.cluster.kubectl(
        "get", "configmap", "web-switchman-learned", "-n", world.namespace, "-o", "json",
        check=False,
    )  # fmt: skip
    return json.loads(out.stdout) if out.returncode == 0 else {}


def pushed_offsets(world: World, pod: str) -> dict[str, float]:
    """The learned offsets in the table the operator last sent to ``pod``."""
    try:
        doc = http_json(
            f"http://127.0.0.1:{world.admin_port}/debug/proxy-config"
            f"?namespace={world.namespace}&pod={pod}"
        )
    except OSError:
        return {}
    params = ((doc.get("table") or {}).get("router") or {}).get("learned", {}).get("params", {})
    return {k: float(v) for k, v in params.items() if k.startswith("adj/")}


def test_feedback_moves_a_task_kind_away_from_a_failing_model(world: World) -> None:
    operator = world.operator()
    # The policy names a ConfigMap that does not exist yet: not Ready, with a reason.
    cond = wait_until(
        lambda: policy_ready(world).get("reason") == "RouterModelNotFound" and policy_ready(world),
        30,
        "RouterModelNotFound condition",
    )
    assert cond["status"] == "False" and "router" in cond["message"]
    # Gzipped, as `router train --out router.json.gz` writes a model with many heads:
    # kubectl puts the file under binaryData, which the operator reads too.
    model_file = world.tmp / "router.json.gz"
    model_file.write_bytes(gzip.compress(router_model().encode(), mtime=0))
    world.cluster.kubectl(
        "create", "configmap", "router", "-n", world.namespace,
        f"--from-file=model.json={model_file}",
    )  # fmt: skip
    stored = json.loads(
        world.cluster.kubectl(
            "get", "configmap", "router", "-n", world.namespace, "-o", "json"
        ).stdout
    )
    assert set(stored["binaryData"]) == {"model.json"} and "data" not in stored
    wait_until(lambda: policy_ready(world).get("status") == "True", 30, "policy Ready")

    token = world.pod("web-1", {"app": "web"})
    _, port, _ = world.sidecar("web-1", token)
    base = f"http://127.0.0.1:{port}"
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)

    def routed() -> bool:
        try:
            return ask(client, CHAT)[0] == "cheap"
        except openai.APIError:
            return False  # no table yet (503)

    wait_until(routed, 30, "the learned router's table in the sidecar")
    assert ask(client, MATH)[0] == "cheap"  # 0.73 clears the bar and cheap is cheaper

    # The app reports that the cheap model's math answers are wrong.
    with httpx.Client(base_url=base, timeout=5) as http:
        for _ in range(12):
            model, rid = ask(client, MATH)
            assert model == "cheap"
            resp = http.post("/v1/feedback", json={"request_id": rid, "thumbs": "down"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["model"] == "cheap" and resp.json()["task_kind"] == "math"

    # Feedback -> usage stream -> operator -> ConfigMap -> pushed table -> routing.
    wait_until(lambda: ask(client, MATH)[0] == "strong", 30, "math traffic moving to strong")
    assert ask(client, MATH)[0] == "strong"
    assert ask(client, CHAT)[0] == "cheap"  # other task kinds keep the cheap model

    cm = learned(world)
    state = json.loads(cm["data"]["offsets.json"])["params"]
    assert state["fb_n/cheap/math"] == 12.0 and state["fb_s/cheap/math"] == 0.0
    assert state["adj/cheap/math"] < -0.5
    assert not any(k.startswith("adj/strong") for k in state)
    (owner,) = cm["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("RoutingPolicy", "web")

    # What was learned survives an operator restart: the new process compiles the
    # offsets from the ConfigMap into the table it sends the reconnecting sidecar.
    operator.kill(signal.SIGTERM)
    world.procs.remove(operator)
    world.operator()
    offsets = wait_until(lambda: pushed_offsets(world, "web-1"), 30, "table after restart")
    assert offsets == {"adj/cheap/math": state["adj/cheap/math"]}
    assert ask(client, MATH)[0] == "strong"
