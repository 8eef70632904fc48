"""``switchman-sidecar [--config routes.yaml]``: the entry point, kept thin."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from switchman_sidecar.main import Sidecar
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.table import TableRejected


async def _run(settings: SidecarSettings) -> int:
    try:
        sidecar = await Sidecar(settings).start()
    except TableRejected as exc:
        print(f"switchman-sidecar: {exc}", file=sys.stderr)
        return 2
    # Start-up objects (modules, the table, PII word lists) live as long as the
    # process: freezing them keeps full collections from re-scanning them, which
    # otherwise shows up as multi-millisecond pauses in the p99.
    gc.collect()
    gc.freeze()
    # ... and the PII word lists, which finish loading in a thread after the
    # server has started: frozen once they are there.
    settle = asyncio.create_task(sidecar.settle(), name="switchman-settle")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(
        f"switchman-sidecar listening on {sidecar.url} (admin {sidecar.admin_url})",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    settle.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await settle
    await sidecar.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="switchman-sidecar")
    parser.add_argument("--config", type=Path, help="route table YAML (standalone mode)")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="application port (default 4000)")
    parser.add_argument("--admin-port", type=int, help="admin port (default 15000)")
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    settings = SidecarSettings.from_env(
        config=args.config,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
        access_log=False if args.no_access_log else None,
    )
    if settings.config is None and not settings.operator_address:
        parser.error("give --config (standalone) or set SWITCHMAN_OPERATOR_ADDRESS")
    logging.basicConfig(
        # Set per pod by the injection webhook (switchman.io/log-level annotation).
        level=os.environ.get("SWITCHMAN_LOG_LEVEL", "info").upper(),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    import uvloop

    sys.exit(uvloop.run(_run(settings)))


if __name__ == "__main__":
    main()
