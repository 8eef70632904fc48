"""``python -m switchman_operator.webhook``: the admission webhook on its own.

For local runs against the local control plane (the chart's URL mode) and the
e2e tests; in a cluster the operator process serves it (SWITCHMAN_WEBHOOK_ENABLED).
Prints one line, ``switchman-webhook port=N``, once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

from ..kube import load_api_client
from .service import run_webhook
from .settings import WebhookSettings


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = WebhookSettings.from_env(enabled=True)
    api_client = load_api_client(os.environ.get("KUBECONFIG") or None)

    async def _main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            if task is not None:
                loop.add_signal_handler(sig, task.cancel)

        def started(port: int) -> None:
            print(f"switchman-webhook port={port}", flush=True)

        with contextlib.suppress(asyncio.CancelledError):
            await run_webhook(settings, api_client, on_started=started)

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
