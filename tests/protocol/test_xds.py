"""The xDS envelope round-trips our resources, and ACK/NACK are told apart."""

from __future__ import annotations

import pytest

from switchman_protocol import xds
from switchman_protocol.v1 import budget_pb2, routes_pb2


def table() -> routes_pb2.RouteTable:
    return routes_pb2.RouteTable(
        version="7",
        namespace="checkout",
        team="checkout",
        models=[
            routes_pb2.Model(
                name="gpt-4o-mini",
                provider=routes_pb2.PROVIDER_OPENAI,
                price=routes_pb2.Price(input_per_mtok=0.15, output_per_mtok=0.6),
                credential=routes_pb2.Credential(api_key="sk-secret"),
            )
        ],
        aliases={"fast": "gpt-4o-mini"},
    )


def test_response_round_trips_through_the_wire_format() -> None:
    budget = budget_pb2.BudgetState(team="checkout", limit=500, spent=12.5)
    response = xds.DiscoveryResponse(
        version_info="7",
        type_url=xds.ROUTE_TABLE_TYPE,
        nonce="n-1",
        resources=[xds.pack(table()), xds.pack(budget)],
    )
    decoded = xds.response_deserializer(xds.response_serializer(response))
    assert decoded.version_info == "7" and decoded.nonce == "n-1"
    assert xds.unpack(decoded.resources[0], routes_pb2.RouteTable) == table()
    assert xds.unpack(decoded.resources[1], budget_pb2.BudgetState) == budget


def test_unpack_refuses_the_wrong_type() -> None:
    with pytest.raises(ValueError, match="is not"):
        xds.unpack(xds.pack(table()), budget_pb2.BudgetState)


def test_type_urls_name_our_messages() -> None:
    assert xds.ROUTE_TABLE_TYPE == "type.googleapis.com/switchman.v1.RouteTable"
    assert xds.message_class(xds.BUDGET_STATE_TYPE) is budget_pb2.BudgetState
    with pytest.raises(KeyError):
        xds.message_class("type.googleapis.com/envoy.config.cluster.v3.Cluster")


def test_ack_and_nack_are_distinguished() -> None:
    first = xds.DiscoveryRequest(node=xds.Node(id="pod-a"), type_url=xds.ROUTE_TABLE_TYPE)
    ack = xds.DiscoveryRequest(
        node=xds.Node(id="pod-a"),
        version_info="7",
        response_nonce="n-1",
        type_url=xds.ROUTE_TABLE_TYPE,
    )
    nack = xds.DiscoveryRequest(
        node=xds.Node(id="pod-a"),
        version_info="6",
        response_nonce="n-1",
        type_url=xds.ROUTE_TABLE_TYPE,
        error_detail=xds.Status(code=3, message="rule premium: bad CEL"),
    )
    wire = [xds.request_deserializer(xds.request_serializer(r)) for r in (first, ack, nack)]
    assert [xds.is_ack(r) for r in wire] == [False, True, False]
    assert wire[2].HasField("error_detail")
    assert wire[2].error_detail.message == "rule premium: bad CEL"
    assert wire[0].node.id == "pod-a"


# --- wire compatibility with Envoy's envelope (envoy-data-plane as the reference) -----


def test_envoys_request_encoding_decodes_field_for_field() -> None:
    """A DiscoveryRequest as envoy-data-plane encodes it, full Node included, reads back
    with our subset; the fields we do not model survive a round trip as unknown fields."""
    from envoy_data_plane.envoy.config.core.v3 import Locality, Node
    from envoy_data_plane.envoy.service.discovery.v3 import DiscoveryRequest
    from envoy_data_plane.google.rpc import Status

    envoy = DiscoveryRequest(
        version_info="6",
        node=Node(
            id="ns/pod-a",
            cluster="web",
            locality=Locality(region="eu", zone="eu-1a"),
            user_agent_name="envoy",
            client_features=["envoy.lb.does_not_support_overprovisioning"],
        ),
        resource_names=["a", "b"],
        type_url=xds.ROUTE_TABLE_TYPE,
        response_nonce="n-9",
        error_detail=Status(code=3, message="rule premium: bad CEL"),
    )
    wire = bytes(envoy)
    ours = xds.request_deserializer(wire)
    assert (ours.version_info, ours.type_url, ours.response_nonce) == ("6", envoy.type_url, "n-9")
    assert (ours.node.id, ours.node.cluster) == ("ns/pod-a", "web")
    assert list(ours.resource_names) == ["a", "b"]
    assert xds.is_nack(ours) and not xds.is_ack(ours)
    assert (ours.error_detail.code, ours.error_detail.message) == (3, "rule premium: bad CEL")
    # Re-encoded (unknown node fields kept), Envoy's classes read the same message.
    back = DiscoveryRequest.FromString(xds.request_serializer(ours))
    assert back == envoy


def test_our_encoding_is_envoys_discovery_response_and_request() -> None:
    from envoy_data_plane.envoy.service.discovery.v3 import DiscoveryRequest, DiscoveryResponse

    budget = budget_pb2.BudgetState(team="checkout", limit=500, spent=12.5)
    ours = xds.DiscoveryResponse(
        version_info="7",
        resources=[xds.pack(table()), xds.pack(budget)],
        canary=True,
        type_url=xds.ROUTE_TABLE_TYPE,
        nonce="n-1",
    )
    envoy = DiscoveryResponse.FromString(xds.response_serializer(ours))
    assert (envoy.version_info, envoy.type_url, envoy.nonce, envoy.canary) == (
        "7",
        xds.ROUTE_TABLE_TYPE,
        "n-1",
        True,
    )
    assert [r.type_url for r in envoy.resources] == [xds.ROUTE_TABLE_TYPE, xds.BUDGET_STATE_TYPE]
    assert routes_pb2.RouteTable.FromString(envoy.resources[0].value) == table()
    assert budget_pb2.BudgetState.FromString(envoy.resources[1].value) == budget
    ack = xds.DiscoveryRequest(
        node=xds.Node(id="ns/pod-a"), version_info="7", response_nonce="n-1", type_url="t"
    )
    decoded = DiscoveryRequest.FromString(xds.request_serializer(ack))
    assert decoded.node is not None and decoded.node.id == "ns/pod-a"
    assert decoded.error_detail is None and decoded.response_nonce == "n-1"
