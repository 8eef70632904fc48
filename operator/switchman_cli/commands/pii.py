"""``switchman pii eval --data FILE``: our detector and Presidio's pattern
recognizers on the same labelled texts, one JSON line.

The file is presidio-research's labelled format (see ../shared/data/pii).
``--unseen-names`` removes every gold PERSON/LOCATION word of the file from
our gazetteer first: what recall is left comes from cues, capitalisation and
the address grammar alone, i.e. roughly what to expect on names no list knows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("pii", help="PII detection tools")
    inner = parser.add_subparsers(dest="pii_command", metavar="SUBCOMMAND")
    ev = inner.add_parser("eval", help="precision/recall/F1 and scan time vs presidio-analyzer")
    ev.add_argument("--data", required=True, type=Path, help="labelled JSON (presidio-research)")
    ev.add_argument("--limit", type=int, default=0, help="only the first N samples")
    ev.add_argument("--no-presidio", action="store_true", help="skip the Presidio comparison")
    ev.add_argument(
        "--unseen-names",
        action="store_true",
        help="drop the file's gold name/place words from our gazetteer first",
    )
    ev.set_defaults(handler=run_eval)

    def usage(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(handler=usage)


def run_eval(args: argparse.Namespace) -> int:
    from switchman_cli.pii_eval import runner
    from switchman_cli.pii_eval.scoring import TYPES, load_samples

    try:
        samples = load_samples(args.data)
    except (OSError, ValueError) as exc:
        print(f"switchman pii eval: {exc}", file=sys.stderr)
        return 2
    if args.limit:
        samples = samples[: args.limit]
    exclude: frozenset[str] = frozenset()
    if args.unseen_names:
        words: set[str] = set()
        for s in samples:
            for start, end, kind in s.gold:
                if kind in ("PERSON", "LOCATION"):
                    words.update(w.lower() for w in re.findall(r"[^\W\d_]+", s.text[start:end]))
        exclude = frozenset(words)
    result = {
        "data": str(args.data),
        "samples": len(samples),
        "unseen_names": bool(args.unseen_names),
        "ours": runner.evaluate(runner.ours(gazetteer_exclude=exclude), samples, TYPES),
    }
    other = None if args.no_presidio else runner.presidio()
    if other is not None:
        result["presidio"] = runner.evaluate(other, samples, runner.PRESIDIO_TYPES)
    elif not args.no_presidio:
        result["presidio"] = {
            "error": "presidio-analyzer is not installed: pip install 'switchman[eval]'"
        }
    print(json.dumps(result, separators=(",", ":")))
    return 0
