"""The engine remembers long texts' findings: a chat re-sends its history every
turn, and each turn then scans only what is new. Entries hold a keyed digest
and offsets, never text."""

from __future__ import annotations

from typing import Any

from switchman_protocol.v1 import routes_pb2
from switchman_sidecar.pii import PiiEngine
from switchman_sidecar.pii.detector import Detector
from switchman_sidecar.pii.engine import CACHE_MIN_CHARS
from switchman_sidecar.pii.spans import Finding

EMAIL = "ada.lovelace@example.org"
FILLER = "The quarterly report is attached; please review the figures. " * 6


class CountingDetector(Detector):
    def __init__(self) -> None:
        super().__init__(names=False, addresses=False)
        self.scanned: list[str] = []

    def scan(self, text: str) -> list[Finding]:
        self.scanned.append(text)
        return super().scan(text)


def engine(size: int = 4096) -> tuple[PiiEngine, CountingDetector]:
    detector = CountingDetector()
    policy = routes_pb2.PiiPolicy(enabled=True)
    return PiiEngine(policy, secret=b"k" * 32, detector=detector, scan_cache=size), detector


def chat(*texts: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": t} for t in texts]}


def turn(n: int) -> str:
    return f"Turn {n}: write to {EMAIL}. {FILLER}"


def test_a_growing_conversation_scans_each_long_message_once() -> None:
    e, detector = engine()
    history: list[str] = []
    bodies = []
    for n in range(5):
        history.append(turn(n))
        bodies.append(e.redact(chat(*history), "chat").body)
    assert len(detector.scanned) == 5  # one new message per turn
    # Same redaction as without the cache.
    plain, _ = engine(size=0)
    assert bodies[-1] == plain.redact(chat(*history), "chat").body
    assert EMAIL not in str(bodies[-1])


def test_short_texts_and_a_disabled_cache_scan_every_time() -> None:
    short = f"mail {EMAIL}"
    assert len(short) < CACHE_MIN_CHARS
    e, detector = engine()
    e.redact(chat(short, short), "chat")
    assert len(detector.scanned) == 2
    e, detector = engine(size=0)
    e.redact(chat(turn(1), turn(1)), "chat")
    assert len(detector.scanned) == 2


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    e, detector = engine(size=2)
    for n in (1, 2, 1, 3, 1, 2):
        e.redact(chat(turn(n)), "chat")
    # 1, 2 miss; 1 hits; 3 misses (evicts 2); 1 hits; 2 misses again.
    assert [t[:6] for t in detector.scanned] == ["Turn 1", "Turn 2", "Turn 3", "Turn 2"]
    assert len(e._cache) == 2


def test_entries_hold_no_text_and_keys_depend_on_the_secret() -> None:
    e, _ = engine()
    e.redact(chat(turn(1)), "chat")
    ((key, findings),) = e._cache.items()
    assert isinstance(key, bytes) and len(key) == 16
    assert all(isinstance(v, (int, str)) for f in findings for v in f)
    assert EMAIL not in repr(findings) and "Turn" not in repr(findings)
    other = PiiEngine(
        routes_pb2.PiiPolicy(enabled=True),
        secret=b"x" * 32,
        detector=Detector(names=False, addresses=False),
    )
    other.redact(chat(turn(1)), "chat")
    assert set(other._cache) != set(e._cache)
