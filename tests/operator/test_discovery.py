"""The discovery stream with real gRPC and TLS: push, ACK, NACK, identity, static stability."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest
from operator_testkit import PODS, Env, RecordingTables, wait_for

from switchman_operator.compile import compile_route_table
from switchman_operator.discovery.debounce import debounce
from switchman_protocol import xds
from switchman_sidecar.budget import BudgetGate
from switchman_sidecar.control import DiscoveryClient


async def run_client(client: DiscoveryClient) -> asyncio.Task[None]:
    return asyncio.create_task(client.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_sidecar_gets_exactly_its_table_and_acks(env: Env) -> None:
    tables = RecordingTables()
    client = DiscoveryClient(env.client_settings("token-web-1", "shop/web-1"), tables, BudgetGate())
    task = await run_client(client)
    try:
        await wait_for(lambda: tables.current is not None, what="first table")
        expected = compile_route_table(PODS["token-web-1"], env.world.resources("shop")).table
        assert expected is not None and tables.current == expected
        assert tables.current.team == "web"
        assert {m.name for m in tables.current.models} == {"mini", "haiku"}
        assert env.cp is not None
        await wait_for(
            lambda: (
                env.cp is not None
                and env.cp.hub.proxy_status()
                and env.cp.hub.proxy_status()[0]["routes"]["state"] == "SYNCED"
            ),
            what="SYNCED",
        )
        row = env.cp.hub.proxy_status()[0]
        assert (row["pod"], row["namespace"], row["team"]) == ("web-1", "shop", "web")
        assert row["version"] == expected.version
        assert row["budget"]["state"] == "NOT SENT"  # no TeamBudget in this namespace
        assert env.cp.hub.policy_counts() == {"shop/web": (1, 1, expected.version)}
    finally:
        await stop(task)


async def test_policy_change_is_pushed_only_to_the_pods_it_selects(env: Env) -> None:
    web, ml = RecordingTables(), RecordingTables()
    tasks = [
        await run_client(DiscoveryClient(env.client_settings("token-web-1"), web, BudgetGate())),
        await run_client(DiscoveryClient(env.client_settings("token-ml"), ml, BudgetGate())),
    ]
    try:
        await wait_for(lambda: web.current is not None and ml.current is not None)
        ml_before = len(ml.applied)
        policy = next(o for o in env.world_objects() if o["metadata"]["name"] == "web")
        policy["spec"]["strategy"] = "quality"
        env.world.upsert(policy)
        assert env.cp is not None
        env.cp.changed("shop")
        await wait_for(lambda: len(web.applied) == 2, what="second web table")
        assert web.applied[1].default_strategy != web.applied[0].default_strategy
        await asyncio.sleep(0.3)  # room for a wrong push to arrive; none may
        assert len(ml.applied) == ml_before
    finally:
        for t in tasks:
            await stop(t)


async def test_nack_keeps_previous_table_and_is_reported(env: Env) -> None:
    tables = RecordingTables()
    client = DiscoveryClient(env.client_settings("token-web-1"), tables, BudgetGate())
    task = await run_client(client)
    try:
        await wait_for(lambda: tables.current is not None)
        good = tables.current
        tables.refuse = lambda t: (
            "model haiku: unsupported capability" if t.cache.ttl_seconds == 60 else ""
        )
        policy = next(o for o in env.world_objects() if o["metadata"]["name"] == "web")
        policy["spec"]["cache"]["ttl"] = "1m"
        env.world.upsert(policy)
        assert env.cp is not None
        env.cp.changed("shop")
        await wait_for(lambda: "shop/web" in env.cp.hub.rejections, what="rejection")  # type: ignore[union-attr]
        assert tables.current is good and client.rejected == 1
        rejection = env.cp.hub.rejections["shop/web"]
        assert rejection.sidecar == "shop/web-1" and "unsupported capability" in rejection.message
        row = env.cp.hub.proxy_status()[0]
        assert row["routes"]["state"] == "STALE" and row["routes"]["acked"] == good.version
        assert env.cp.hub.policy_counts()["shop/web"][:2] == (1, 0)
        assert env.cp.metrics.nacks.labels("routes")._value.get() == 1
    finally:
        await stop(task)


async def test_unknown_token_and_foreign_node_id_are_refused(env: Env) -> None:
    async def first_error(token: str, node: str) -> grpc.StatusCode:
        settings = env.client_settings(token)
        from switchman_sidecar.control.channel import auth_metadata, open_channel

        async with open_channel(settings) as channel:
            call = channel.stream_stream(
                xds.ADS_METHOD,
                request_serializer=xds.request_serializer,
                response_deserializer=xds.response_deserializer,
            )(metadata=auth_metadata(settings), timeout=5)
            await call.write(
                xds.DiscoveryRequest(node=xds.Node(id=node), type_url=xds.ROUTE_TABLE_TYPE)
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for _ in call:
                    pass
            return info.value.code()

    assert await first_error("forged", "shop/web-1") == grpc.StatusCode.UNAUTHENTICATED
    # A pod of namespace "other" asking for a pod of "shop" by node id is refused...
    assert await first_error("token-other", "shop/web-1") == grpc.StatusCode.PERMISSION_DENIED
    # ...and without a node id it gets only what its own namespace grants.
    tables = RecordingTables()
    task = await run_client(
        DiscoveryClient(env.client_settings("token-other"), tables, BudgetGate())
    )
    try:
        await wait_for(lambda: tables.current is not None)
        assert tables.current is not None and tables.current.namespace == "other"
        assert b"sk-web" not in tables.current.SerializeToString()
    finally:
        await stop(task)


async def test_static_stability_across_operator_restart(env: Env) -> None:
    tables = RecordingTables()
    client = DiscoveryClient(env.client_settings("token-web-1"), tables, BudgetGate())
    task = await run_client(client)
    try:
        await wait_for(lambda: client.connected and tables.current is not None)
        held = tables.current
        port = env.port
        assert env.cp is not None
        await env.cp.stop(0)
        await wait_for(lambda: not client.connected, what="disconnect")
        assert tables.current is held  # still serving the last good table
        await env.start(port)
        await wait_for(
            lambda: client.connected and env.cp is not None and env.cp.hub.proxy_status(),
            what="reconnect",
        )
        await wait_for(lambda: env.cp.hub.proxy_status()[0]["routes"]["state"] == "SYNCED")  # type: ignore[union-attr]
        assert tables.current == held
    finally:
        await stop(task)


async def test_debounce_merges_a_burst_and_caps_the_delay() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    pushes: list[set[str]] = []

    async def push(keys: set[str]) -> None:
        pushes.append(keys)

    task = asyncio.create_task(debounce(queue, push, quiet=0.05, max_delay=0.3))
    try:
        for ns in ("a", "b", "a"):
            queue.put_nowait(ns)
        await wait_for(lambda: pushes, what="first push")
        assert pushes == [{"a", "b"}]
        # A steady drip never goes quiet; the cap still forces pushes.
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < 0.8:
            queue.put_nowait("c")
            await asyncio.sleep(0.01)
        assert len(pushes) >= 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_cancelled_stream_leaves_no_task_behind(env: Env) -> None:
    """A sidecar that goes away mid-stream: its server-side waiter task must end too.

    It used to wait on the connection's wake event forever (one leaked task and
    Connection per such stream), and kopf's shutdown then waited 5 s for them.
    """

    def event_waiters() -> list[asyncio.Task[object]]:
        return [
            t
            for t in asyncio.all_tasks()
            if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "Event.wait"
        ]

    before = len(event_waiters())
    tables = RecordingTables()
    client = DiscoveryClient(env.client_settings("token-web-1", "shop/web-1"), tables, BudgetGate())
    task = await run_client(client)
    await wait_for(lambda: tables.current is not None, what="first table")
    await stop(task)  # the client cancels its call: the server's handler is cancelled
    assert env.cp is not None
    await wait_for(lambda: env.cp is not None and not env.cp.hub.connections, what="disconnect")
    await wait_for(lambda: len(event_waiters()) <= before, what="no leaked waiter task")
