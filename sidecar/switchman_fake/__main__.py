"""``python -m switchman_fake --port 9000``: the fake upstream as a process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys

from switchman_fake.server import FakeUpstream


async def _run(host: str, port: int, record: bool, bench_gc: bool) -> None:
    fake = FakeUpstream(record=record)
    url = await fake.start(host, port)
    if bench_gc:
        # Benchmarks: the fake is every column's upstream, so its own collector
        # pauses would show in every p99. Start-up objects are frozen (never
        # scanned again) and young collections run 10x less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(7000, 10, 10)
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
    parser.add_argument(
        "--bench-gc", action="store_true", help="benchmarks: freeze start-up objects, fewer GCs"
    )
    args = parser.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_run(args.host, args.port, not args.no_record, args.bench_gc))


if __name__ == "__main__":
    main()
