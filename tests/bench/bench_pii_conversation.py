"""PII redaction cost per turn of a growing chat: the engine with its findings
cache vs without, interleaved turn by turn in one process. A chat client
re-sends the whole history every turn, so without the cache the scan grows
with the conversation; with it, each turn scans only the new messages.

Conversations are built from the labelled texts of ../shared/data/pii (user
turns of ~8 joined texts, assistant turns of ~5). Prints ONE JSON line.

Run: .venv/bin/python tests/bench/bench_pii_conversation.py [--turns 20 --conversations 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.pii import PiiEngine

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "pii"


def texts() -> list[str]:
    out: list[str] = []
    for name in ("synth_v2_dev.json", "generated_large.json"):
        out += [s["full_text"] for s in json.loads((DATA / name).read_text())]
    return out


def conversation(pool: list[str], turns: int, rng: random.Random) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for _ in range(turns):
        messages.append({"role": "user", "content": " ".join(rng.sample(pool, 8))})
        messages.append({"role": "assistant", "content": " ".join(rng.sample(pool, 5))})
    return messages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--conversations", type=int, default=3)
    args = ap.parse_args()
    pool = texts()
    policy = routes_pb2.PiiPolicy(enabled=True)
    secret = b"bench" * 8
    per_turn: dict[str, list[list[float]]] = {"cached": [], "uncached": []}
    kb_at_end: list[float] = []
    for c in range(args.conversations):
        messages = conversation(pool, args.turns, random.Random(c))
        engines = {
            "cached": PiiEngine(policy, secret=secret),
            "uncached": PiiEngine(policy, secret=secret, scan_cache=0),
        }
        times: dict[str, list[float]] = {k: [] for k in engines}
        for t in range(1, args.turns + 1):
            # the request of turn t: the history so far and the new user message
            body: dict[str, Any] = {"model": "m", "messages": messages[: 2 * t]}
            order = list(engines) if t % 2 else list(reversed(engines))
            for name in order:
                t0 = time.thread_time_ns()
                engines[name].redact(body, "chat")
                times[name].append((time.thread_time_ns() - t0) / 1e6)
        for name in engines:
            per_turn[name].append(times[name])
        kb_at_end.append(len(json.dumps(messages[: 2 * args.turns]).encode()) / 1024)

    def at(name: str, turn: int) -> float:
        return round(statistics.median(run[turn - 1] for run in per_turn[name]), 3)

    marks = sorted({1, min(5, args.turns), min(10, args.turns), args.turns})
    result: dict[str, Any] = {"bench": "pii_conversation", "turns": args.turns}
    result["conversations"] = args.conversations
    result["request_kb_at_last_turn"] = round(statistics.median(kb_at_end), 1)
    for name in per_turn:
        result[name] = {
            "cpu_ms_at_turn": {str(t): at(name, t) for t in marks},
            "cpu_ms_total": round(statistics.median(sum(run) for run in per_turn[name]), 2),
        }
    result["uncached_vs_cached_total"] = round(
        result["uncached"]["cpu_ms_total"] / result["cached"]["cpu_ms_total"], 2
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
