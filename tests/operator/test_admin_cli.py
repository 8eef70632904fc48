"""proxy-status / proxy-config through the admin port and the CLI, and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request

import pytest
from operator_testkit import Env, RecordingTables, wait_for

from switchman_cli.__main__ import main as cli_main
from switchman_operator.admin import AdminServer
from switchman_sidecar.budget import BudgetGate
from switchman_sidecar.control import DiscoveryClient


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310
        return str(r.read().decode())


async def test_proxy_status_and_config_redacted(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env.cp is not None
    admin = AdminServer(env.cp.hub, env.cp.metrics, "replica-a")
    port = await admin.start("127.0.0.1:0")
    tables = RecordingTables()
    task = asyncio.create_task(
        DiscoveryClient(env.client_settings("token-web-1"), tables, BudgetGate()).run()
    )
    try:
        await wait_for(
            lambda: (
                env.cp is not None
                and env.cp.hub.proxy_status()
                and env.cp.hub.proxy_status()[0]["routes"]["state"] == "SYNCED"
            )
        )
        url = f"http://127.0.0.1:{port}"
        code = await asyncio.to_thread(cli_main, ["proxy-status", "--operator", url])
        out = capsys.readouterr().out
        assert code == 0
        header, row = out.strip().splitlines()
        assert header.split()[:5] == ["NAME", "TEAM", "POLICY", "ROUTES", "BUDGET"]
        assert row.split()[:6] == ["web-1.shop", "web", "shop/web", "SYNCED", "NOT", "SENT"]
        assert tables.current is not None and tables.current.version in row

        code = await asyncio.to_thread(cli_main, ["proxy-config", "web-1.shop", "--operator", url])
        out = capsys.readouterr().out
        assert code == 0
        dump = json.loads(out)
        assert "sk-web" not in out and "sk-ant-web" not in out
        assert {m["credential"]["apiKey"] for m in dump["table"]["models"]} == {"<redacted>"}
        assert dump["table"]["version"] == tables.current.version

        code = await asyncio.to_thread(
            cli_main, ["proxy-config", "nobody", "-n", "shop", "--operator", url]
        )
        assert code == 1 and "no sidecar of pod shop/nobody" in capsys.readouterr().err

        metrics = await asyncio.to_thread(fetch, f"{url}/metrics")
        assert "switchman_connected_sidecars 1.0" in metrics
        assert 'switchman_pushes_total{type="routes"} 1.0' in metrics
        assert "sk-web" not in metrics
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await admin.stop()
