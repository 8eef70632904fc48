"""Data-plane overhead: direct vs nginx vs the Switchman sidecar vs LiteLLM proxy.

One run, same fake upstream (its own process, loopback), same load:
* latency at a fixed open-loop rate (scheduled send times, so queueing counts):
  p50/p99 of each target minus the direct p50/p99 = added latency;
* maximum req/s with a closed loop of concurrent keep-alive connections;
* streaming: time to first SSE byte, added over direct;
* resident memory (VmHWM, peak RSS) of the proxy process.
Every proxy runs as one process (nginx: one worker). nginx comes from Debian
(apt-get, only if missing and installable); LiteLLM from PyPI into a throwaway
venv under ~/.cache/switchman/bench-venv. A missing column is reported as
skipped with the reason. Prints ONE JSON line at the end.

Load generator: by default a small Go program (tests/bench/loadgen, stdlib
only), built with ``go build`` into ~/.cache/switchman/bench-bin/ under a hash
of its source (Go is needed anyway to build the control plane). Its send times
come from nanosleep with a 1 ns timer slack on a locked thread (Python's and
Go's event-loop timers wake up to ~1 ms late, and a late send counts as
latency), and it leaves the load core to the fake upstream. ``--loadgen python``
runs the former asyncio/uvloop generator (same phases) for comparison. During
the closed loop the proxy's CPU use (its share of one core, ``cpu_util_closed``)
and every core's busy share are reported: a proxy near 1.0 is the limit; a
proxy well below 1.0 with the load core near 1.0 means the harness was, and
``others_on_proxy_cpu_closed`` (the proxy core's busy share beyond the
proxy's own) says how much of the proxy's core other jobs took. ``rps_per_cpu_s``, requests per
second of the proxy's own CPU time in the closed loop, is its capacity on one
whole core even when other jobs take part of that core.

Fairness: on a machine with two or more CPUs the proxy under test (every one
alike, children included) is pinned to one core and the load generator and
the fake upstream to another, so the proxy never competes with the load it is
measured under. Each target is warmed up, then measured in several short
repetitions, interleaved across targets (rep 1 of every target, then rep 2,
...) so drift hits all alike; the JSON has the median and the per-repetition
values (added latency is taken against the direct run of the same repetition).
A serial phase (one request at a time on one connection) gives the added
latency without queueing and the proxy's CPU time per request (from /proc):
the figures that move least when other jobs load the machine.

    .venv/bin/python tests/bench/bench_sidecar_overhead.py            # --quick (default)
    .venv/bin/python tests/bench/bench_sidecar_overhead.py --full
    .venv/bin/python tests/bench/bench_sidecar_overhead.py --loadgen python  # the old generator
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvloop
import yaml

LITELLM = "litellm[proxy]==1.80.17"  # pinned; never 1.107.0
VENV = Path.home() / ".cache" / "switchman" / "bench-venv"
BIN_CACHE = Path.home() / ".cache" / "switchman" / "bench-bin"
LOADGEN_SRC = Path(__file__).resolve().parent / "loadgen"
BODY = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hello benchmark"}]}'
STREAM_BODY = (
    b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hello benchmark"}]}'
)


def cpu_split() -> tuple[set[int], set[int]] | None:
    """(proxy CPUs, load CPUs): one core for the proxy, another for load + fake."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, {cpus[0]}


SPLIT = cpu_split()


def pin_proxy() -> None:
    """preexec_fn: the proxy process (and every child it forks) on the proxy core."""
    if SPLIT is not None:
        os.sched_setaffinity(0, SPLIT[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def runs_compiled(pid: int) -> bool | None:
    """Whether a sidecar process has the request path compiled with mypyc mapped."""
    try:
        return "switchman-compiled" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """Time on CPU of a process (all its threads) and its children (nginx's worker).

    From /proc/<pid>/task/<tid>/schedstat (nanoseconds actually run), which is
    far finer than the clock ticks of /proc/<pid>/stat. CPU per request is the
    steadiest figure on a shared machine: other load stretches wall-clock
    latency but not the proxy's own time on the CPU.
    """
    total = 0.0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return total
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0]) / 1e9
            children = (task / "children").read_text().split()
        except (OSError, IndexError, ValueError):
            continue
        total += sum(cpu_seconds(int(c)) for c in children)
    return total


# --- a minimal keep-alive HTTP/1.1 client (the load generator) --------------------------


class Conn:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.r, self.w, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w, f"127.0.0.1:{port}")

    async def post(self, path: str, body: bytes, stream: bool = False) -> float:
        """Sends one request; returns seconds to the first body byte (for streams) or 0."""
        self.w.write(
            b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer sk-bench\r\ncontent-length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), len(body), body)
        )
        t0 = time.perf_counter()
        head = await self.r.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        ttfb = 0.0
        if b"transfer-encoding: chunked" in lower:
            while True:
                size_line = await self.r.readuntil(b"\r\n")
                size = int(size_line.strip().split(b";")[0], 16)
                if ttfb == 0.0:
                    ttfb = time.perf_counter() - t0
                if size == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                await self.r.readexactly(size + 2)
        else:
            start = lower.index(b"content-length:") + 15
            length = int(lower[start : lower.index(b"\r\n", start)])
            await self.r.readexactly(length)
            ttfb = time.perf_counter() - t0
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return ttfb

    def close(self) -> None:
        self.w.close()


async def open_loop(port: int, path: str, rate: float, seconds: float, conns: int) -> list[float]:
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await Conn.open(port))
    for _ in range(min(conns, 50)):  # warm-up
        c = await pool.get()
        await c.post(path, BODY)
        pool.put_nowait(c)
    latencies: list[float] = []
    late: list[float] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        late.append(time.perf_counter() - scheduled)
        c = await pool.get()
        try:
            await c.post(path, BODY)
            latencies.append(time.perf_counter() - scheduled)
        except Exception:
            errors += 1
            c = await Conn.open(port)
        pool.put_nowait(c)

    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    if errors:
        print(f"  {errors} errors", file=sys.stderr)
    LATE[:] = late
    return latencies


LATE: list[float] = []
"""The last open loop's send delays past their scheduled times (the generator's own lag)."""


async def closed_loop(port: int, path: str, seconds: float, conns: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        c = await Conn.open(port)
        while time.perf_counter() < stop:
            try:
                await c.post(path, BODY)
            except (OSError, asyncio.IncompleteReadError):
                c.close()  # the server closed a keep-alive connection: reconnect
                c = await Conn.open(port)
                continue
            done += 1
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return done / (time.perf_counter() - t0)


async def serial(port: int, path: str, n: int) -> list[float]:
    """One request at a time on one connection: no queueing, no batching."""
    c = await Conn.open(port)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await c.post(path, BODY)
        out.append(time.perf_counter() - t0)
    c.close()
    return out


async def ttft(port: int, path: str, n: int) -> list[float]:
    c = await Conn.open(port)
    out = []
    for _ in range(n):
        out.append(await c.post(path, STREAM_BODY, stream=True))
    c.close()
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the Go load generator ------------------------------------------------------------------


def build_loadgen() -> Path | str:
    """The loadgen binary, built once per source (and Go version); a reason if impossible."""
    go = shutil.which("go")
    if go is None:
        return "go not found (use --loadgen python)"
    env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": ""}
    version = subprocess.run(
        [go, "version"], capture_output=True, text=True, timeout=60, check=False, env=env
    ).stdout
    digest = hashlib.sha256(version.encode())
    for f in sorted(LOADGEN_SRC.iterdir()):
        if f.suffix == ".go" or f.name == "go.mod":
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
    exe = BIN_CACHE / f"loadgen-{digest.hexdigest()[:16]}"
    if exe.exists():
        return exe
    BIN_CACHE.mkdir(parents=True, exist_ok=True)
    part = exe.with_name(f"{exe.name}.{os.getpid()}.part")
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(part), "."],
        cwd=LOADGEN_SRC,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        part.unlink(missing_ok=True)
        return f"go build failed: {done.stderr.strip()[-500:]}"
    part.replace(exe)
    week = time.time() - 7 * 86400
    for stale in BIN_CACHE.glob("loadgen-*"):
        # Built from another source: removed a week after it was built (another
        # checkout, e.g. a baseline worktree, may be using it now).
        if stale == exe or stale.name.endswith(".part"):
            continue
        with contextlib.suppress(OSError):  # another run may remove it first
            if stale.stat().st_mtime < week:
                stale.unlink()
    return exe


def capture_answers(fake_port: int, path: Path) -> None:
    """The Python fake's answers to the bench's requests, for the Go upstream to replay.

    A whole answer, a stream, and a stream with a usage chunk (what the sidecar
    asks for); streams as their SSE events, one chunk each as the fake sends them.
    """
    stream_usage = stream_usage_body()
    found: dict[str, Any] = {}
    for key, body in (("chat", BODY), ("stream", STREAM_BODY), ("stream_usage", stream_usage)):
        conn = http.client.HTTPConnection("127.0.0.1", fake_port, timeout=10)
        try:
            conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        if answer.status != 200:
            raise RuntimeError(f"fake upstream answered {answer.status} to the capture")
        if key == "chat":
            json.loads(data)
            found[key] = base64.b64encode(data).decode()
        else:
            frames = [part + b"\n\n" for part in data.split(b"\n\n") if part.strip()]
            found[key] = [base64.b64encode(f).decode() for f in frames]
    path.write_text(json.dumps(found))


def stream_usage_body() -> bytes:
    request = json.loads(STREAM_BODY)
    request["stream_options"] = {"include_usage": True}
    return json.dumps(request, separators=(",", ":")).encode()


class GoLoad:
    """Runs one phase of the Go load generator per call and returns its JSON."""

    def __init__(self, exe: Path, tmp: Path) -> None:
        # A private copy: a run from a checkout with another loadgen source
        # replaces the cached binary (and removes this one) while we run.
        self.exe = tmp / "loadgen"
        shutil.copy2(exe, self.exe)
        self.body = tmp / "body.json"
        self.stream_body = tmp / "stream-body.json"
        self.body.write_bytes(BODY)
        self.stream_body.write_bytes(STREAM_BODY)

    def run(self, mode: str, port: int, path: str, pid: int | None, **opts: float) -> Any:
        body = self.stream_body if mode == "ttft" else self.body
        cmd = [str(self.exe), "-mode", mode, "-port", str(port), "-path", path]
        cmd += ["-body-file", str(body), "-pid", str(pid or 0)]
        for key, value in opts.items():
            cmd += [f"-{key}", str(value)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
        result = json.loads(out.stdout)
        if result.get("errors"):
            print(f"  {result['errors']} errors ({mode})", file=sys.stderr)
        return result

    def serve(self, port: int, answers: Path) -> subprocess.Popen[bytes]:
        """The Go upstream (replaying ``answers``) on ``port``; at most 3 hours."""
        cmd = [str(self.exe), "-mode", "serve", "-port", str(port), "-answers", str(answers)]
        return subprocess.Popen([*cmd, "-seconds", "10800"])


# --- targets --------------------------------------------------------------------------------


def start_nginx(tmp: Path, fake_port: int) -> tuple[subprocess.Popen[bytes], int] | str:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nginx-light"],
            capture_output=True,
            timeout=180,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
        )
    if nginx is None:
        return "nginx not installed and not installable here"
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log {tmp}/nginx-access.log;
  client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/pt; fastcgi_temp_path {tmp}/ft;
  uwsgi_temp_path {tmp}/ut; scgi_temp_path {tmp}/st;
  keepalive_requests 1000000; keepalive_timeout 75s;
  upstream fake {{ server 127.0.0.1:{fake_port}; keepalive 128; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL, preexec_fn=pin_proxy
    )
    wait_port(port, proc, 10)
    return proc, port


ADMIN_PORTS: dict[int, int] = {}
"""Sidecar pid → its admin port (the native lane's counters are read from it)."""


def lane_served(pid: int) -> int | None:
    """Requests the sidecar's native lane answered (None: no lane, or unreadable)."""
    admin = ADMIN_PORTS.get(pid)
    if admin is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/config_dump", timeout=5) as r:
            lane = json.loads(r.read()).get("native_lane")
    except (OSError, ValueError):
        return None
    return int(lane["served"]) if isinstance(lane, dict) else None


def start_sidecar(
    tmp: Path,
    fake_port: int,
    source: Path | None = None,
    plain: bool = False,
    lane: bool = True,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """``source``: a checkout's ``sidecar/`` directory to run instead (A/B runs);
    ``plain``: without the compiled request path (``SWITCHMAN_COMPILED=0``);
    ``lane``: False turns the native lane off (``SWITCHMAN_NATIVE_LANE=0``)."""
    port, admin = free_port(), free_port()
    routes = {
        "team": "bench",
        "models": [
            {
                "name": "gpt-4o",
                "provider": "PROVIDER_OPENAI",
                "upstream_model": "gpt-4o",
                "endpoint": f"http://127.0.0.1:{fake_port}/v1",
                "credential": {"api_key": "sk-bench"},
                "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
            }
        ],
    }
    (tmp / "routes.yaml").write_text(yaml.safe_dump(routes))
    cmd = [sys.executable, "-m", "switchman_sidecar", "--config", str(tmp / "routes.yaml")]
    cmd += ["--port", str(port), "--admin-port", str(admin)]
    env = dict(os.environ)
    if plain:
        env["SWITCHMAN_COMPILED"] = "0"
    if not lane:
        env["SWITCHMAN_NATIVE_LANE"] = "0"
    env.update(extra_env or {})
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source), str(source.parent / "protos"), env.get("PYTHONPATH", "")]
        )
    # Access and usage logs on, into a file (as nginx's access log).
    log = (tmp / f"sidecar-{port}.log").open("wb")
    proc = subprocess.Popen(cmd, stderr=log, preexec_fn=pin_proxy, env=env)
    log.close()
    wait_port(port, proc, 20)
    ADMIN_PORTS[proc.pid] = admin
    return proc, port


def start_litellm(
    tmp: Path, fake_port: int, quick: bool
) -> tuple[subprocess.Popen[bytes], int] | str:
    exe = VENV / "bin" / "litellm"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
            subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "-q", LITELLM], check=True, timeout=900
            )
        except (subprocess.SubprocessError, OSError) as exc:
            return f"litellm install failed: {exc}"
    port = free_port()
    config = {
        "model_list": [
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": f"http://127.0.0.1:{fake_port}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "telemetry": False},
    }
    (tmp / "litellm.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"}
    cmd = [
        str(exe),
        "--config",
        str(tmp / "litellm.yaml"),
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        preexec_fn=pin_proxy,
    )
    try:
        wait_port(port, proc, 120)
    except RuntimeError as exc:
        proc.kill()
        return f"litellm did not start: {exc}"
    return proc, port


async def warm_up(port: int, path: str, conns: int, seconds: float) -> None:
    """Connections, pools, caches and code paths of the target exercised before measuring."""
    await closed_loop(port, path, seconds, conns)
    await ttft(port, path, 20)


def busy_shares() -> dict[str, tuple[int, int]]:
    """Per CPU (busy, total) clock ticks from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        f = line.split()
        if len(f) < 8 or not f[0].startswith("cpu") or f[0] == "cpu":
            continue
        ticks = [int(v) for v in f[1:9]]
        out[f[0][3:]] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def measure_go(
    load: GoLoad,
    port: int,
    path: str,
    rate: float,
    seconds: float,
    conns: int,
    rps_s: float,
    pid: int | None,
) -> dict[str, Any]:
    """The phases of ``measure`` with the Go load generator."""
    opened = load.run("open", port, path, pid, rate=rate, seconds=seconds, conns=conns)
    closed = load.run("closed", port, path, pid, seconds=rps_s, conns=conns)
    first = load.run("ttft", port, path, pid, n=100)
    n_serial = int(rate * seconds / 2)
    one_by_one = load.run("serial", port, path, pid, n=n_serial)
    lat = [ns / 1e9 for ns in opened["samples_ns"]]
    out: dict[str, Any] = {
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "rps_max": closed["rps"],
        "ttft_ms": statistics.median(first["samples_ns"]) / 1e6,
        "serial_p50_ms": statistics.median(one_by_one["samples_ns"]) / 1e6,
        "n": len(lat),
        "sched_late_p99_us": round(opened["sched_late_ns_p99"] / 1000, 1),
        "loadgen_cpu_us_per_req": round(closed["loadgen_cpu_s"] / max(1, closed["done"]) * 1e6, 1),
        "cpu_busy_closed": closed["cpu_busy"],
    }
    if pid:
        out["cpu_us_per_req"] = one_by_one["proxy_cpu_us_per_req"]
        out["cpu_util_closed"] = closed["proxy_cpu_util"]
        out["cpu_util_open"] = opened["proxy_cpu_util"]
        if closed["proxy_cpu_s"] > 0:
            out["rps_per_cpu_s"] = closed["done"] / closed["proxy_cpu_s"]
    return out


async def measure(
    port: int, path: str, rate: float, seconds: float, conns: int, rps_s: float, pid: int | None
) -> dict[str, Any]:
    lat = await open_loop(port, path, rate, seconds, conns)
    ticks0, cpu_c0, t_c0 = busy_shares(), cpu_seconds(pid) if pid else 0.0, time.perf_counter()
    own0 = time.process_time()
    rps = await closed_loop(port, path, rps_s, conns)
    wall_c, ticks1 = time.perf_counter() - t_c0, busy_shares()
    own = time.process_time() - own0
    cpu_c1 = cpu_seconds(pid) if pid else 0.0
    first = await ttft(port, path, 100)
    # CPU per request, serially: the steadiest figure on a shared machine (other
    # load stretches wall-clock latency, not the proxy's own CPU time).
    n_serial = int(rate * seconds / 2)
    cpu0 = cpu_seconds(pid) if pid else 0.0
    one_by_one = await serial(port, path, n_serial)
    cpu1 = cpu_seconds(pid) if pid else 0.0
    out = {
        "p50_ms": pct(lat, 0.5) * 1000,
        "p99_ms": pct(lat, 0.99) * 1000,
        "rps_max": rps,
        "ttft_ms": statistics.median(first) * 1000,
        "serial_p50_ms": statistics.median(one_by_one) * 1000,
        "n": len(lat),
        "sched_late_p99_us": round(pct(LATE, 0.99) * 1e6, 1),
        "loadgen_cpu_us_per_req": round(own / (rps * wall_c) * 1e6, 1),
        "cpu_busy_closed": {
            k: round((b - ticks0[k][0]) / (t - ticks0[k][1]), 3)
            for k, (b, t) in ticks1.items()
            if k in ticks0 and t > ticks0[k][1]
        },
    }
    if pid:
        out["cpu_us_per_req"] = (cpu1 - cpu0) / n_serial * 1e6
        out["cpu_util_closed"] = round((cpu_c1 - cpu_c0) / wall_c, 3)
        if cpu_c1 > cpu_c0:
            out["rps_per_cpu_s"] = rps * wall_c / (cpu_c1 - cpu_c0)
    return out


def summarise(runs: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repetitions of (target - direct of the same repetition), and the spread."""

    def added(key: str) -> list[float]:
        return [round((r[key] - b[key]) * 1000, 1) for r, b in zip(runs, base, strict=True)]

    p50, p99, ttfb = added("p50_ms"), added("p99_ms"), added("ttft_ms")
    serial_p50 = added("serial_p50_ms")
    rps = [round(r["rps_max"]) for r in runs]
    cpu = [round(r.get("cpu_us_per_req", 0.0), 1) for r in runs]
    util = [r.get("cpu_util_closed", 0.0) for r in runs]
    per_cpu = [round(r.get("rps_per_cpu_s", 0.0)) for r in runs]
    load_busy = [
        r["cpu_busy_closed"].get(str(min(SPLIT[1])), 0.0) if SPLIT is not None else 0.0
        for r in runs
    ]
    # The proxy core's busy share beyond the proxy's own: other jobs on its core.
    others = [
        round(max(0.0, r["cpu_busy_closed"].get(str(min(SPLIT[0])), 0.0) - u), 3)
        if SPLIT is not None
        else 0.0
        for r, u in zip(runs, util, strict=True)
    ]
    return {
        "cpu_us_per_req": statistics.median(cpu),
        "added_serial_p50_us": statistics.median(serial_p50),
        "added_p50_us": statistics.median(p50),
        "added_p99_us": statistics.median(p99),
        "rps_max": round(statistics.median(rps)),
        "added_ttft_us": statistics.median(ttfb),
        "runs": {
            "added_p50_us": p50,
            "added_p99_us": p99,
            "rps_max": rps,
            "added_ttft_us": ttfb,
            "cpu_us_per_req": cpu,
            "added_serial_p50_us": serial_p50,
            "cpu_util_closed": util,
            "load_cpu_busy_closed": load_busy,
            "others_on_proxy_cpu_closed": others,
            "rps_per_cpu_s": per_cpu,
        },
        "rps_per_cpu_s": round(statistics.median(per_cpu)),
        "cpu_util_closed": statistics.median(util),
        "load_cpu_busy_closed": statistics.median(load_busy),
        "others_on_proxy_cpu_closed": statistics.median(others),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", default=True, help="short run (default)")
    parser.add_argument(
        "--full", action="store_true", help="longer run: 1,000 RPS for 20 s per target"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop requests per second")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 3, full 5)")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="also run the sidecar from another checkout's sidecar/ dir (A/B in one run);"
        " `plain`: this checkout without its compiled modules (SWITCHMAN_COMPILED=0);"
        " `python`: this checkout without its native lane (SWITCHMAN_NATIVE_LANE=0);"
        " `env:VAR=VALUE[,VAR=VALUE]`: this checkout with those settings",
    )
    parser.add_argument("--only", default="", help="comma-separated targets to run (and direct)")
    parser.add_argument(
        "--loadgen",
        choices=("go", "python"),
        default="go",
        help="load generator: the Go one (default) or the former asyncio one",
    )
    parser.add_argument(
        "--upstream",
        choices=("go", "python"),
        default="go",
        help="the Go server replaying the Python fake's captured answers (default; needs"
        " --loadgen go), or the Python fake itself",
    )
    parser.add_argument(
        "--fake-gc",
        choices=("frozen", "default"),
        default="frozen",
        help="fake upstream: start-up objects frozen and fewer collections (default), or not",
    )
    args = parser.parse_args()
    seconds, rps_s, warm_s = (10.0, 5.0, 2.0) if args.full else (3.0, 1.5, 1.0)
    reps = args.reps or (5 if args.full else 3)
    only = {t.strip() for t in args.only.split(",") if t.strip()}
    conns = 32
    if SPLIT is not None:
        os.sched_setaffinity(0, SPLIT[1])  # the load generator, and the fake it starts
    tmp = Path(tempfile.mkdtemp(prefix="switchman-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    runs: dict[str, list[dict[str, Any]]] = {}
    rss: dict[str, float | None] = {}
    compiled: dict[str, bool | None] = {}
    served: dict[str, int | None] = {}
    skipped: dict[str, str] = {}
    load: GoLoad | None = None
    if args.loadgen == "go":
        exe = build_loadgen()
        if isinstance(exe, str):
            shutil.rmtree(tmp, ignore_errors=True)
            sys.exit(f"bench_sidecar_overhead: {exe}")
        load = GoLoad(exe, tmp)
    try:
        fake_port = free_port()
        fake_cmd = [sys.executable, "-m", "switchman_fake", "--port", str(fake_port), "--no-record"]
        if args.fake_gc == "frozen":
            fake_cmd.append("--bench-gc")
        fake = subprocess.Popen(
            fake_cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(fake)
        wait_port(fake_port, fake, 20)
        if args.upstream == "go" and load is not None:
            capture_answers(fake_port, tmp / "answers.json")
            fake_port = free_port()
            upstream = load.serve(fake_port, tmp / "answers.json")
            procs.append(upstream)
            wait_port(fake_port, upstream, 20)
        targets: list[tuple[str, int, str, int | None]] = [
            ("direct", fake_port, "/v1/chat/completions", None)
        ]
        ng = start_nginx(tmp, fake_port) if not only or "nginx" in only else "--only"
        if isinstance(ng, str):
            skipped["nginx"] = ng
        else:
            procs.append(ng[0])
            targets.append(("nginx", ng[1], "/v1/chat/completions", ng[0].pid))
        if not only or "sidecar" in only:
            sc = start_sidecar(tmp, fake_port)
            procs.append(sc[0])
            targets.append(("sidecar", sc[1], "/v1/chat/completions", sc[0].pid))
        for spec in args.baseline:
            label, sep, source = spec.partition("=")
            if not sep:
                label, source = "", spec
            if source == "plain":  # this checkout, its compiled modules off
                bl = start_sidecar(tmp, fake_port, plain=True)
            elif source == "python":  # this checkout, its native lane off
                bl = start_sidecar(tmp, fake_port, lane=False)
            elif source.startswith("env:"):  # this checkout with VAR=VALUE[,VAR=VALUE]
                pairs = [p.partition("=") for p in source[4:].split(",") if p]
                bl = start_sidecar(tmp, fake_port, extra_env={k: v for k, _, v in pairs})
            else:
                bl = start_sidecar(tmp, fake_port, Path(source).resolve())
            procs.append(bl[0])
            targets.append((label or "baseline", bl[1], "/v1/chat/completions", bl[0].pid))
        if args.no_litellm or (only and "litellm" not in only):
            skipped["litellm"] = "--no-litellm" if args.no_litellm else "--only"
        else:
            ll = start_litellm(tmp, fake_port, not args.full)
            if isinstance(ll, str):
                skipped["litellm"] = ll
            else:
                procs.append(ll[0])
                targets.append(("litellm", ll[1], "/v1/chat/completions", ll[0].pid))
        for _name, port, path, _pid in targets:
            if load is not None:
                load.run("closed", port, path, None, seconds=warm_s, conns=conns)
                load.run("ttft", port, path, None, n=20)
            else:
                uvloop.run(warm_up(port, path, conns, warm_s))
        for rep in range(reps):
            for name, port, path, pid in targets:
                if load is not None:
                    r = measure_go(load, port, path, args.rate, seconds, conns, rps_s, pid)
                else:
                    r = uvloop.run(measure(port, path, args.rate, seconds, conns, rps_s, pid))
                runs.setdefault(name, []).append(r)
                if pid is not None:
                    rss[name] = peak_rss_mib(pid)
                    if name not in ("nginx", "litellm"):
                        compiled[name] = runs_compiled(pid)
                print(f"== {name} rep {rep + 1}: {json.dumps(r)}", file=sys.stderr)
        for name, _port, _path, pid in targets:
            if pid is not None and pid in ADMIN_PORTS:
                served[name] = lane_served(pid)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    base = runs["direct"]
    summary: dict[str, Any] = {
        "bench": "sidecar_overhead",
        "mode": "full" if args.full else "quick",
        "rate_rps": args.rate,
        "seconds_per_rep": seconds,
        "reps": reps,
        "loadgen": args.loadgen,
        "upstream": args.upstream if load is not None else "python",
        "fake_gc": args.fake_gc,
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "pinning": (
            {"proxy_cpu": sorted(SPLIT[0]), "load_and_fake_cpu": sorted(SPLIT[1])}
            if SPLIT is not None
            else "none (one CPU)"
        ),
        "direct": {
            k: round(statistics.median(r[k] for r in base), 3)
            for k in ("p50_ms", "p99_ms", "rps_max", "ttft_ms", "serial_p50_ms")
        },
    }
    if SPLIT is not None:
        load_cpu = str(min(SPLIT[1]))
        summary["direct"]["load_cpu_busy_closed"] = statistics.median(
            r["cpu_busy_closed"].get(load_cpu, 0.0) for r in base
        )
    for key in ("sched_late_p99_us", "loadgen_cpu_us_per_req"):
        summary["direct"][key] = statistics.median(r[key] for r in base)
    for name, target_runs in runs.items():
        if name != "direct":
            summary[name] = {**summarise(target_runs, base), "rss_mib": rss.get(name)}
            if name in compiled:
                summary[name]["compiled"] = compiled[name]
            if name in served:
                # Requests its native lane answered (None: lane off or unavailable).
                summary[name]["lane_served"] = served[name]
    sc_s, ll_s = summary.get("sidecar"), summary.get("litellm")
    if sc_s is not None:
        summary["sidecar_targets"] = {
            "added_p50_le_150us": sc_s["added_p50_us"] <= 150,
            "added_p99_le_1ms": sc_s["added_p99_us"] <= 1000,
            "rps_ge_4000": sc_s["rps_max"] >= 4000,
            "rss_le_80mib": (sc_s["rss_mib"] or 0) <= 80,
        }
        if ll_s is not None and sc_s["added_p50_us"] > 0:
            ratio = round(ll_s["added_p50_us"] / sc_s["added_p50_us"], 1)
            summary["litellm_vs_sidecar_added_p50"] = ratio
            summary["sidecar_targets"]["ge_10x_less_than_litellm"] = ratio >= 10
    summary["skipped"] = skipped
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
