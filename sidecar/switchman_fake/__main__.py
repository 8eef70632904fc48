"""``python -m switchman_fake --port 9000``: the fake upstream as a process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from switchman_fake.server import FakeUpstream


async def _run(host: str, port: int, record: bool) -> None:
    fake = FakeUpstream(record=record)
    url = await fake.start(host, port)
    print(f"switchman-fake listening on {url}", file=sys.stderr, flush=True)
    print(url, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="switchman-fake", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="do not keep received requests")
    args = parser.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_run(args.host, args.port, not args.no_record))


if __name__ == "__main__":
    main()
