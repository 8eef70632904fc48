"""The xDS envelope round-trips our resources, and ACK/NACK are told apart."""

from __future__ import annotations

import pytest
from envoy_data_plane.envoy.config.core.v3 import Node
from envoy_data_plane.google.rpc import Status

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
    first = xds.DiscoveryRequest(node=Node(id="pod-a"), type_url=xds.ROUTE_TABLE_TYPE)
    ack = xds.DiscoveryRequest(
        node=Node(id="pod-a"), version_info="7", response_nonce="n-1", type_url=xds.ROUTE_TABLE_TYPE
    )
    nack = xds.DiscoveryRequest(
        node=Node(id="pod-a"),
        version_info="6",
        response_nonce="n-1",
        type_url=xds.ROUTE_TABLE_TYPE,
        error_detail=Status(code=3, message="rule premium: bad CEL"),
    )
    wire = [xds.request_deserializer(xds.request_serializer(r)) for r in (first, ack, nack)]
    assert [xds.is_ack(r) for r in wire] == [False, True, False]
    assert wire[2].error_detail is not None
    assert wire[2].error_detail.message == "rule premium: bad CEL"
    assert wire[0].node is not None and wire[0].node.id == "pod-a"
