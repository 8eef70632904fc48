"""PII scan time per KB: our detector vs presidio-analyzer's pattern
recognizers, on the same ~4 KB prompts (joined labelled texts from
../shared/data/pii). Prints ONE JSON line.

Run: .venv/bin/python tests/bench/bench_pii.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from switchman_cli.pii_eval.runner import Detect, ours, presidio, prompts_of
from switchman_cli.pii_eval.scoring import load_samples

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pii"
REPEATS = 5


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
    kb = statistics.mean(len(p.encode()) for p in prompts) / 1024
    ordered = sorted(wall)
    return {
        "ms_4kb_p50": round(statistics.median(wall), 3),
        "ms_4kb_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
        "ms_per_kb_p50": round(statistics.median(wall) / kb, 3),
        "cpu_ms_4kb_p50": round(statistics.median(cpu), 3),
    }


def main() -> int:
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
        "ours": timings(ours_detect, prompts),
    }
    other = presidio()
    result["presidio_patterns"] = (
        timings(other, prompts) if other is not None else "presidio-analyzer not installed"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
