"""Ensembles and shadow sampling: pure aggregation and sampling decisions.

Ensembles (a rule marks a request high-stakes): the pipeline sends it to every
model of the plan and aggregates the answers here, by majority vote over
normalised answers or by a judge model's pick. Shadow routing: a sample of
requests is also sent to a reference model; the answer is compared offline
(feedback source ``shadow``), never shown to the client, and its cost is
capped per route table.
"""

from __future__ import annotations

import random
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ShadowGate",
    "Vote",
    "judge_messages",
    "normalise_answer",
    "parse_judge",
    "shadow_agreement",
    "vote",
]

_FINAL = re.compile(
    r"(?:final answer|answer)\s*(?:is|:)?\s*[:\-]?\s*\(?([^\n.]+?)\)?\s*(?:\.|$)", re.I | re.M
)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_PICK = re.compile(r"\b(?:best|answer|choice)?\s*[:#]?\s*(\d+)\b", re.I)


def normalise_answer(text: str) -> str:
    """What two answers must share to count as the same vote."""
    found = _FINAL.findall(text)
    core = found[-1] if found else text
    return _SPACE.sub(" ", core.strip().strip(".").lower())


def shadow_agreement(answer: str, reference: str) -> float:
    """How far an answer agrees with the shadow (reference) model's, in [0, 1]: 1 for
    the same normalised final answer, else the overlap (Jaccard) of their word sets.
    Cheap on purpose (no model call); a judge can replace it later."""
    a, b = normalise_answer(answer), normalise_answer(reference)
    if a == b:
        return 1.0
    wa, wb = set(_WORD.findall(a)), set(_WORD.findall(b))
    if not wa or not wb:
        return 0.0
    return round(len(wa & wb) / len(wa | wb), 4)


@dataclass(frozen=True, slots=True)
class Vote:
    winner: int
    """Index of the answer returned to the client (the first with the top count)."""
    support: float
    """Share of answers agreeing with the winner."""
    counts: dict[str, int]


def vote(answers: Sequence[str]) -> Vote:
    """Majority vote; ties go to the earliest answer (the plan lists models by priority)."""
    if not answers:
        raise ValueError("nothing to vote on")
    keys = [normalise_answer(a) for a in answers]
    counts = Counter(keys)
    top = max(counts.values())
    winner = next(i for i, k in enumerate(keys) if counts[k] == top)
    return Vote(winner, top / len(answers), dict(counts))


def judge_messages(question: str, answers: Sequence[str]) -> list[dict[str, str]]:
    listing = "\n\n".join(f"Answer {i + 1}:\n{a}" for i, a in enumerate(answers))
    return [
        {
            "role": "system",
            "content": "You compare answers to a question. Reply with only the number "
            "of the best answer.",
        },
        {"role": "user", "content": f"Question:\n{question}\n\n{listing}"},
    ]


def parse_judge(reply: str, n: int) -> int | None:
    """The judge's pick as an index, or None when the reply names no valid answer."""
    for match in _PICK.finditer(reply):
        pick = int(match.group(1))
        if 1 <= pick <= n:
            return pick - 1
    return None


class ShadowGate:
    """Whether a request is shadowed: a deterministic sample, under a spend cap."""

    def __init__(self, sample_rate: float, max_spend: float, rng: random.Random) -> None:
        self.sample_rate = max(0.0, min(1.0, sample_rate))
        self.max_spend = max_spend
        self.spent = 0.0
        self._rng = rng

    def sample(self, request_id: str) -> bool:
        if self.sample_rate <= 0:
            return False
        if self.max_spend > 0 and self.spent >= self.max_spend:
            return False
        # Deterministic per request id, so a retried request is shadowed (or not) again.
        draw = zlib.crc32(request_id.encode()) / 0xFFFFFFFF if request_id else self._rng.random()
        return draw < self.sample_rate

    def charge(self, cost: float) -> None:
        """Record what a shadow request cost (it is never charged to the team)."""
        self.spent += max(0.0, cost)
