"""Where a request's time goes inside the sidecar, on real sockets.

Runs the sidecar (this checkout's, or ``--source DIR``'s ``sidecar/``) in a
child process on the proxy core, against the Go upstream that
bench_sidecar_overhead.py uses, and drives it with the Go load generator
(serially, then in the open loop at ``--rate``). The child marks
``time.perf_counter_ns()`` at each step of every request:

    in        the request's bytes reach Python (the server connection's data_received)
    parsed    httptools has the whole request (on_message_complete)
    up_w0/1   before / after the upstream socket write
    up_in     the upstream answer's bytes reach Python
    up_done   httptools has the whole answer
    cl_w0/1   before / after the client socket write
    done      ``Pipeline.finish`` returned (usage, cost, metrics, log line)

(the plain Python path: the marks replace methods, which the modules compiled
with mypyc do not allow) and prints one JSON line: per phase (serial, open)
the median and p90 of each step in microseconds, the Python time on the request's latency path (the
steps between ``in`` and ``cl_w1`` that are not the upstream's), what
happens after the client write, and the load generator's own figures (its
serial latency is the client's view: Python + kernel + wake-ups). The marks
cost ~0.1-0.3 us each (a wrapper call and a clock read); the step figures
are for attribution, not for comparison with the other benchmarks.

    .venv/bin/python tests/bench/bench_sidecar_trace.py [--source DIR] [--n 3000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))

import bench_sidecar_overhead as overhead  # noqa: E402

STEPS = ("in", "parsed", "up_w0", "up_w1", "up_in", "up_done", "cl_w0", "cl_w1", "done")


def _child(out: Path, config: Path, port: int) -> None:
    """The traced sidecar: patches marks into the server, the upstream client and
    the pipeline, serves until SIGTERM, then writes every request's marks."""
    import asyncio

    import uvloop

    from switchman_sidecar.http import client as hc
    from switchman_sidecar.http import server as hs
    from switchman_sidecar.main import Sidecar
    from switchman_sidecar.pipeline import Pipeline
    from switchman_sidecar.settings import SidecarSettings

    now = time.perf_counter_ns
    records: list[dict[str, int]] = []
    cur: dict[str, int] = {}
    state = {"inflight": 0, "dirty": False}
    """Requests that overlap another (open loop) share ``cur``: they are not recorded."""

    class _Tx:
        """A transport whose writes are marked (``pre``/``post``)."""

        def __init__(self, inner: Any, pre: str, post: str) -> None:
            self._inner, self._pre, self._post = inner, pre, post

        def write(self, data: bytes) -> None:
            if self._pre not in cur:
                cur[self._pre] = now()
                self._inner.write(data)
                cur[self._post] = now()
            else:
                self._inner.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    class Server(hs._HttpConnection):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Tx(transport, "cl_w0", "cl_w1"))  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            if not self._busy and "in" not in cur:
                cur["in"] = now()
            super().data_received(data)

        def on_message_complete(self) -> None:
            self._parsed()
            super().on_message_complete()

        def _dispatch(self, *args: Any, **kw: Any) -> None:  # the compiled parser's way in
            self._parsed()
            super()._dispatch(*args, **kw)

        def _parsed(self) -> None:
            if "parsed" in cur:
                return
            cur["parsed"] = now()
            state["inflight"] += 1
            if state["inflight"] > 1:
                state["dirty"] = True

    class Upstream(hc._Conn):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            parse = self.parse
            if parse is not None:
                # Parsed in one call (no httptools callbacks): the request may then run
                # on to its client write inside data_received (eager.py).
                def marked(data: bytes, limit: int) -> Any:
                    got = parse(data, limit)
                    if got is not None:
                        cur.setdefault("up_done", now())
                    return got

                self.parse = marked

        def connection_made(self, transport: Any) -> None:
            super().connection_made(_Tx(transport, "up_w0", "up_w1"))  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            if "up_in" not in cur:
                cur["up_in"] = now()
            super().data_received(data)

        def on_message_complete(self) -> None:
            cur.setdefault("up_done", now())
            super().on_message_complete()

    finish = Pipeline.finish

    def traced_finish(self: Pipeline, ex: Any) -> None:
        finish(self, ex)
        cur["done"] = now()
        state["inflight"] -= 1
        if all(k in cur for k in STEPS) and not state["dirty"]:
            records.append(dict(cur))
        if state["inflight"] <= 0:
            state["inflight"] = 0
            state["dirty"] = False
        cur.clear()

    if os.environ.get("TRACE_FINE"):
        from switchman_sidecar import api_chat, app, pipeline, route_request

        def mark_sync(owner: Any, name: str, key: str, after: str = "") -> None:
            fn = getattr(owner, name)

            def wrapped(*a: Any, **kw: Any) -> Any:
                cur.setdefault(key, now())
                r = fn(*a, **kw)
                if after:
                    cur.setdefault(after, now())
                return r

            setattr(owner, name, wrapped)

        def mark_async(owner: Any, name: str, key: str) -> None:
            fn = getattr(owner, name)

            async def wrapped(*a: Any, **kw: Any) -> Any:
                cur.setdefault(key, now())
                return await fn(*a, **kw)

            setattr(owner, name, wrapped)

        mark_sync(app.orjson, "loads", "f_app_loads")  # type: ignore[attr-defined]
        mark_sync(api_chat, "validate_chat", "f_validate", "f_validated")
        mark_sync(Pipeline, "prepare", "f_prepare", "f_prepared")
        mark_sync(route_request.LazyPromptRequest, "__init__", "f_routereq")
        mark_async(Pipeline, "failover", "f_failover")
        mark_async(hc.UpstreamClient, "request", "f_client_request")
        mark_sync(hc.UpstreamResponse, "read", "f_resp_read")
        mark_sync(Pipeline, "cost_line", "f_cost_line")
        from switchman_sidecar.adapters.openai import OpenAIAdapter

        mark_sync(OpenAIAdapter, "chat_result", "f_chat_result", "f_chat_result_done")
        mark_sync(pipeline.Exchange, "decision_lines", "f_decision_lines")
        mark_sync(pipeline.Exchange, "answered_by", "f_answered_by")

    hs._HttpConnection = Server  # type: ignore[misc]
    hc._Conn = Upstream  # type: ignore[misc]
    Pipeline.finish = traced_finish  # type: ignore[method-assign]

    async def run() -> None:
        import gc

        settings = SidecarSettings.from_env(config=config, port=port, admin_port=0)
        sidecar = await Sidecar(settings).start()
        gc.collect()
        gc.freeze()
        await sidecar.settle()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, records.clear)  # the measured phase starts
        await stop.wait()
        await sidecar.close()

    uvloop.run(run())
    out.write_text(json.dumps(records))


def _summary(records: list[dict[str, int]]) -> dict[str, Any]:

    def q(values: list[float]) -> dict[str, float]:
        values = sorted(values)
        return {
            "p50": round(statistics.median(values) / 1000, 1),
            "p90": round(values[int(len(values) * 0.9)] / 1000, 1),
        }

    out: dict[str, Any] = {"n": len(records)}
    for a, b in itertools.pairwise(STEPS):
        out[f"{a}->{b}"] = q([r[b] - r[a] for r in records])
    fine = sorted((k for k in records[0] if k.startswith("f_")), key=lambda k: records[0][k])
    if fine:
        order = ["parsed", *fine, "up_w0"]
        if "f_resp_read" in fine:
            order = ["parsed", *[f for f in fine if records[0][f] < records[0]["up_w0"]], "up_w0"]
            tail = [f for f in fine if records[0][f] > records[0]["up_w0"]]
            out["fine_after_upstream"] = {
                f"{a}->{b}": q([r[b] - r[a] for r in records])
                for a, b in zip(["up_done", *tail], [*tail, "cl_w0"], strict=False)
            }
        out["fine_to_upstream"] = {
            f"{a}->{b}": q([r[b] - r[a] for r in records]) for a, b in itertools.pairwise(order)
        }
    out["python_on_path"] = q([(r["up_w1"] - r["in"]) + (r["cl_w1"] - r["up_in"]) for r in records])
    out["after_client_write"] = q([r["done"] - r["cl_w1"] for r in records])
    gaps = [b["in"] - a["done"] for a, b in itertools.pairwise(records)]
    out["idle_until_next_request"] = q([g for g in gaps if g > 0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, help="another checkout's sidecar/ dir")
    parser.add_argument("--n", type=int, default=3000, help="serial requests")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))
        return
    exe = overhead.build_loadgen()
    if isinstance(exe, str):
        sys.exit(exe)
    if overhead.SPLIT is not None:
        os.sched_setaffinity(0, overhead.SPLIT[1])
    tmp = Path(tempfile.mkdtemp(prefix="switchman-trace-"))
    load = overhead.GoLoad(exe, tmp)
    procs: list[subprocess.Popen[bytes]] = []
    result: dict[str, Any] = {"bench": "sidecar_trace", "source": str(args.source or "")}
    try:
        fake_port = overhead.free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "switchman_fake", "--port", str(fake_port), "--no-record"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(fake)
        overhead.wait_port(fake_port, fake, 20)
        overhead.capture_answers(fake_port, tmp / "answers.json")
        up_port = overhead.free_port()
        upstream = load.serve(up_port, tmp / "answers.json")
        procs.append(upstream)
        overhead.wait_port(up_port, upstream, 20)
        # The sidecar's table, as bench_sidecar_overhead writes it.
        probe, _ = overhead.start_sidecar(tmp, up_port, args.source)
        probe.terminate()
        probe.wait(10)
        # The marks replace methods of the sidecar's classes, which classes compiled
        # with mypyc (_compiled.py) do not allow: this traces the plain Python path,
        # with the native lane off (it would answer the requests without Python).
        env = {**os.environ, "SWITCHMAN_COMPILED": "0", "SWITCHMAN_NATIVE_LANE": "0"}
        if args.source is not None:
            src = args.source.resolve()
            env["PYTHONPATH"] = os.pathsep.join([str(src), str(src.parent / "protos")])
        results: dict[str, Any] = {}
        for phase in ("serial", "open"):
            port = overhead.free_port()
            marks = tmp / f"marks-{phase}.json"
            cmd = [sys.executable, str(HERE), "--child", str(marks), str(tmp / "routes.yaml")]
            log = (tmp / f"sidecar-{phase}.log").open("wb")
            proc = subprocess.Popen(
                [*cmd, str(port)], stderr=log, env=env, preexec_fn=overhead.pin_proxy
            )
            log.close()
            procs.append(proc)
            overhead.wait_port(port, proc, 20)
            path = "/v1/chat/completions"
            load.run("closed", port, path, None, seconds=1.0, conns=8)  # warm-up
            time.sleep(0.2)
            proc.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            if phase == "serial":
                got = load.run("serial", port, path, proc.pid, n=args.n)
                lat = sorted(got["samples_ns"])
                results["loadgen_serial"] = {
                    "p50_us": round(statistics.median(lat) / 1000, 1),
                    "cpu_us_per_req": got.get("proxy_cpu_us_per_req"),
                }
            else:
                got = load.run("open", port, path, proc.pid, rate=args.rate, seconds=args.seconds)
                lat = sorted(got["samples_ns"])
                results["loadgen_open"] = {
                    "p50_us": round(statistics.median(lat) / 1000, 1),
                    "p99_us": round(lat[int(len(lat) * 0.99)] / 1000, 1),
                }
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            records = json.loads(marks.read_text())
            results[phase] = _summary(records)
        direct = load.run("serial", up_port, "/v1/chat/completions", None, n=args.n)
        results["direct_serial_p50_us"] = round(statistics.median(direct["samples_ns"]) / 1000, 1)
        result.update(results)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
