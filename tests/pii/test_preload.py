"""The PII word lists load off the event loop when the sidecar starts."""

from __future__ import annotations

import threading

import pytest

from switchman_sidecar import main
from switchman_sidecar.main import Sidecar
from switchman_sidecar.pii import gazetteer
from switchman_sidecar.settings import SidecarSettings
from switchman_sidecar.usage import InMemoryUsageSink


async def test_start_preloads_the_word_lists_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[threading.Thread] = []

    def spy() -> threading.Thread:
        thread = gazetteer.preload_gazetteer()
        started.append(thread)
        return thread

    monkeypatch.setattr(main, "preload_gazetteer", spy)
    settings = SidecarSettings(port=0, admin_port=0, access_log=False, log_usage=False)
    sidecar = await Sidecar(settings, sink=InMemoryUsageSink()).start()
    try:
        assert len(started) == 1
        assert started[0] is not threading.current_thread()
        started[0].join(timeout=60)
        assert not started[0].is_alive()
    finally:
        await sidecar.close()
