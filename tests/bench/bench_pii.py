"""PII scan time per KB: our detector vs presidio-analyzer's pattern
recognizers, on the same ~4 KB prompts (joined labelled texts from
../shared/data/pii: PII-dense, ~65 findings each), and on ~4 KB prompts of
ordinary text (LLM queries of ../shared/data/routing joined, a few findings
each; key ``ordinary_text``, when that file is there). Prints ONE JSON line.

Run: .venv/bin/python tests/bench/bench_pii.py [--baseline CHECKOUT]

``--baseline`` times another checkout's detector (e.g. a ``git worktree`` of
the previous commit) in the same process, interleaved prompt by prompt with
ours, and reports both and the CPU-time ratio: on a machine shared with other
jobs, absolute figures drift between runs, an interleaved ratio much less.

``native`` says whether the detector used the compiled scanner
(``switchman_native``); the Python reference of the same checkout
(``Detector(native=False)``, the same findings) is timed beside it as
``python_reference``, interleaved prompt by prompt; ``ours_alone`` is the
compiled detector timed by itself first (interleaved, each scan starts with
caches the other one filled).

``host_loop_1m_ms`` is a fixed pure-Python loop (one million iterations)
timed in the same run: the host's speed drifts over days (the same code and
Presidio have taken 3x longer on one day than on another), so absolute
figures from different days compare only through it or through Presidio.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from switchman_cli.pii_eval.runner import Detect, ours, presidio, prompts_of
from switchman_cli.pii_eval.scoring import load_samples

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pii"
QUERIES = DATA.parent / "routing" / "llmrouter" / "default_query_train.jsonl"
REPEATS = 5
_ALIAS = "_switchman_pii_baseline"


def timings(detect: Detect, prompts: list[str]) -> dict[str, float]:
    """Wall and CPU (this thread) time per prompt: on a machine shared with
    other jobs, wall time includes waiting for a core, CPU time does not."""
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(REPEATS):
        for p in prompts:
            t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            detect(p)
            cpu.append((time.thread_time_ns() - c0) / 1e6)
            wall.append((time.perf_counter_ns() - t0) / 1e6)
    return _summary(wall, cpu, prompts)


def _summary(wall: list[float], cpu: list[float], prompts: list[str]) -> dict[str, float]:
    kb = statistics.mean(len(p.encode()) for p in prompts) / 1024
    ordered = sorted(wall)
    return {
        "ms_4kb_p50": round(statistics.median(wall), 3),
        "ms_4kb_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "ms_per_kb_p50": round(statistics.median(wall) / kb, 3),
        "cpu_ms_4kb_p50": round(statistics.median(cpu), 3),
    }


def ordinary_prompts(limit: int = 60, size: int = 4096) -> list[str]:
    """~4 KB prompts of ordinary text: LLM queries (maths, reading, trivia,
    logic puzzles) in a fixed shuffled order, joined up to ``size`` characters;
    [] when the file is not there."""
    if not QUERIES.exists():
        return []
    import random

    lines = QUERIES.read_text("utf-8").split("\n")  # not splitlines: U+2028 occurs in queries
    queries = [json.loads(line)["query"] for line in lines if line]
    random.Random(1).shuffle(queries)
    out: list[str] = []
    cur = ""
    for q in queries:
        if len(q) > size - 100:
            continue
        if len(cur) + len(q) + 2 > size:
            out.append(cur)
            cur = ""
            if len(out) >= limit:
                break
        cur += q + "\n\n"
    return out


def host_loop_ms() -> float:
    """A fixed pure-Python loop, best of three: the host's speed today."""
    best = float("inf")
    for _ in range(3):
        c0 = time.thread_time_ns()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, (time.thread_time_ns() - c0) / 1e6)
    return round(best, 1)


def baseline_detector(checkout: Path) -> Callable[[str], Any]:
    """The detector of another checkout, imported under another package name
    (its modules copied to a temporary directory, imports rewritten)."""
    src = checkout / "sidecar" / "switchman_sidecar" / "pii"
    tmp = Path(tempfile.mkdtemp(prefix="pii-baseline-"))
    pkg = tmp / _ALIAS
    pkg.mkdir()
    for f in src.glob("*.py"):
        text = "" if f.name == "__init__.py" else f.read_text(encoding="utf-8")
        (pkg / f.name).write_text(text.replace("switchman_sidecar.pii.", f"{_ALIAS}."), "utf-8")
    sys.path.insert(0, str(tmp))
    try:
        det = importlib.import_module(f"{_ALIAS}.detector").Detector()
    finally:
        sys.path.remove(str(tmp))
        shutil.rmtree(tmp, ignore_errors=True)
    scan: Callable[[str], Any] = det.scan
    return scan


def interleaved(new: Detect, old: Callable[[str], Any], prompts: list[str]) -> dict[str, Any]:
    """Both detectors on each prompt in turn (order alternating), CPU and wall."""
    runs: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "baseline": ([], [])}
    for r in range(REPEATS):
        for i, p in enumerate(prompts):
            pair = [("ours", new), ("baseline", old)]
            for name, fn in pair if (i + r) % 2 else reversed(pair):
                t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
                fn(p)
                runs[name][1].append((time.thread_time_ns() - c0) / 1e6)
                runs[name][0].append((time.perf_counter_ns() - t0) / 1e6)
    out: dict[str, Any] = {k: _summary(w, c, prompts) for k, (w, c) in runs.items()}
    out["cpu_ratio_ours_to_baseline"] = round(
        statistics.median(runs["ours"][1]) / statistics.median(runs["baseline"][1]), 3
    )
    return out


def _python_reference() -> Callable[[str], Any] | None:
    """This checkout's detector without the compiled scanner, or None when the
    compiled scanner is not installed (then ``ours`` is the Python one)."""
    from switchman_sidecar.pii.detector import Detector
    from switchman_sidecar.pii.gazetteer import load_gazetteer
    from switchman_sidecar.pii.native import native_scanner

    gaz = load_gazetteer()
    if native_scanner(gaz) is None:
        return None
    scan: Callable[[str], Any] = Detector(gazetteer=gaz, native=False).scan
    return scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to time alongside")
    parser.add_argument("--no-presidio", action="store_true", help="skip Presidio's timing")
    args = parser.parse_args(argv)
    files = sorted(DATA.glob("*.json"))
    if not files:
        print(json.dumps({"bench": "pii", "error": f"no labelled data in {DATA}"}))
        return 0
    samples = [s for f in files for s in load_samples(f)]
    prompts = prompts_of(samples)[:60]
    t0 = time.perf_counter()
    ours_detect = ours()
    ours_detect(prompts[0])  # load the word lists
    load_s = time.perf_counter() - t0
    result: dict[str, object] = {
        "bench": "pii",
        "prompts": len(prompts),
        "word_lists_load_s": round(load_s, 3),
    }
    result["host_loop_1m_ms"] = host_loop_ms()
    ordinary = ordinary_prompts()
    old = baseline_detector(args.baseline) if args.baseline is not None else None
    if args.baseline is not None:
        result["baseline_checkout"] = str(args.baseline)
    other = None if args.no_presidio else presidio()
    reference = _python_reference()
    result["native"] = reference is not None
    for key, texts in (("", prompts), ("ordinary_text", ordinary)):
        if not texts:
            continue
        part: dict[str, object] = result if not key else {"prompts": len(texts)}
        if old is not None:
            for p in texts:  # warm both
                old(p)
                ours_detect(p)
            part.update(interleaved(ours_detect, old, texts))
        elif reference is not None:
            # alone first (the interleaved run shares the caches with Python's)
            part["ours_alone"] = timings(ours_detect, texts)
            both = interleaved(ours_detect, reference, texts)
            part["ours"], part["python_reference"] = both["ours"], both["baseline"]
            part["cpu_ratio_ours_to_python_reference"] = both["cpu_ratio_ours_to_baseline"]
        else:
            part["ours"] = timings(ours_detect, texts)
        if not args.no_presidio:
            part["presidio_patterns"] = (
                timings(other, texts) if other is not None else "presidio-analyzer not installed"
            )
        if key:
            result[key] = part
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
