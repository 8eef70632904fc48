"""The pod watch in the hub: a connected pod whose labels change is re-selected at once."""

from __future__ import annotations

from operator_testkit import objects

from switchman_operator.discovery.hub import Hub
from switchman_operator.metrics import OperatorMetrics
from switchman_operator.resources import PodInfo
from switchman_operator.world import World

POD = PodInfo("checkout", "checkout-api-7d9f", {"app": "checkout-api"})


def test_relabel_moves_a_connection_to_the_policy_its_labels_select() -> None:
    world = World()
    for body in objects("example-checkout"):
        world.upsert(body)
    hub = Hub(world, OperatorMetrics())
    pod = PodInfo(POD.namespace, POD.name, POD.labels, uid="u1")
    conn = hub.connect(pod)
    assert conn.team and conn.policy and hub.watches(pod.namespace, pod.name)
    team = conn.team
    assert not hub.relabel(pod.namespace, pod.name, "u1", dict(POD.labels))  # no change
    assert not hub.relabel(pod.namespace, pod.name, "other-uid", {"app": "x"})  # another pod
    conn.wake.clear()
    assert hub.relabel(pod.namespace, pod.name, "u1", {"app": "nothing-selects-this"})
    assert conn.wake.is_set() and conn.policy is None and conn.team == ""
    assert hub._peers[(pod.namespace, team)] == 0
    # A cached identity (old labels) is corrected for usage and for a reconnect.
    assert hub.current(pod).labels == {"app": "nothing-selects-this"}
    hub.disconnect(conn)
    assert hub.connect(pod).policy is None
    hub.forget_pod(pod.namespace, pod.name)
    assert hub.current(pod) is pod
