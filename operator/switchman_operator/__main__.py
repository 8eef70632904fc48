"""``switchman-operator``: kopf watches + gRPC control plane + admin HTTP in one loop.

``run`` is composable: other servers of the operator process (the admission
webhook) are passed as ``extra`` coroutine factories and run beside the rest,
sharing the one Settings object and the Operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import kopf

from .admin import AdminServer
from .app import Operator
from .discovery.identity import TokenReviewIdentifier
from .handlers import register
from .kube import Kube, load_api_client
from .leader.elector import elector_for
from .settings import Settings
from .tls import ServerTls, load_tls, make_self_signed
from .webhook.hook import prepare

__all__ = ["main", "run"]

log = logging.getLogger("switchman.operator")

#: How long kopf may take to stop its watchers once our servers are down.
KOPF_STOP_TIMEOUT = 10.0

Extra = Callable[[Operator], Coroutine[Any, Any, None]]


def server_tls(settings: Settings) -> ServerTls:
    if settings.tls_cert_file and settings.tls_key_file:
        tls = load_tls(settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
    else:
        tls = make_self_signed(list(settings.tls_hosts))
    if settings.tls_ca_out:
        settings.tls_ca_out.write_bytes(tls.ca_pem)
    return tls


async def run(
    settings: Settings, stop: asyncio.Event | None = None, extra: Sequence[Extra] = ()
) -> None:
    stop = stop or asyncio.Event()
    kube = Kube(load_api_client(settings.kubeconfig))
    operator = Operator(
        settings,
        kube,
        TokenReviewIdentifier(kube, settings.audience),
        server_tls(settings),
    )
    # Leader election (off: always leader); gate status writes before anything starts.
    elector = elector_for(settings.leader, kube.client, operator.leadership_changed)
    if elector is not None:
        operator.leading = elector.is_leader
    grpc_port = await operator.start()
    admin = AdminServer(operator.cp.hub, operator.metrics, settings.replica)
    admin_port = await admin.start(settings.admin_address)
    # One line on stdout that a supervisor (or a test) can parse.
    print(f"switchman-operator grpc={grpc_port} admin={admin_port}", flush=True)
    registry = kopf.OperatorRegistry()
    register(registry, operator)
    kopf_settings = kopf.OperatorSettings()
    kopf_settings.posting.enabled = False  # our own events, not kopf's handler chatter
    kopf_settings.watching.server_timeout = 300
    ready = asyncio.Event()
    # kopf gets its own stop flag, set only once our servers are down: kopf's shutdown
    # waits 5 s for every task of the loop and then cancels it, gRPC's included.
    kopf_stop = asyncio.Event()
    kopf_task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=list(settings.namespaces),
            stop_flag=kopf_stop,
            ready_flag=ready,
        ),
        name="kopf",
    )
    ours = [asyncio.create_task(fn(operator), name="extra") for fn in extra]
    if elector is not None:
        ours.append(asyncio.create_task(elector.run(stop), name="leader"))
    await ready.wait()
    # kopf replaced our SIGTERM/SIGINT handlers with its own at start-up; on its own it
    # would stop, wait 5 s for *every* task of the loop (gRPC streams, ledger workers)
    # and then cancel them, so shutdown took 5 s and died in gRPC's cancelled shutdown
    # (exit 1). Take the signals back: we stop our servers first, then let kopf stop.
    _own_signals(stop)
    admin.ready = True
    try:
        done, _ = await asyncio.wait(
            [kopf_task, *ours, asyncio.ensure_future(stop.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in done:
            if task in (kopf_task, *ours) and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        admin.ready = False
        # Ours first (the elector: no renewal may race the release below; the webhook),
        # then gRPC with a short grace (sidecars reconnect and resend what was not ACKed),
        # ledger and admin, and kopf last, so it finds no task of ours to wait 5 s for.
        for task in ours:
            task.cancel()
        for task in ours:
            with contextlib.suppress(BaseException):
                await task
        if elector is not None:
            # Stops gating status writes at once, then hands the Lease over.
            await elector.release()
        await operator.stop()
        await admin.stop()
        stop.set()
        kopf_stop.set()  # it stops its watchers and returns
        await asyncio.wait([kopf_task], timeout=KOPF_STOP_TIMEOUT)
        kopf_task.cancel()
        with contextlib.suppress(BaseException):
            await kopf_task


def _own_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (only the main thread can own signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kopf").setLevel(logging.WARNING)
    settings = Settings.from_env()

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # The admission webhook (issue #5): its certificates and its task.
        ready_settings, webhook = await prepare(settings)
        await run(ready_settings, stop, extra=webhook)

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
