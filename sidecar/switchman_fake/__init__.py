"""A fake LLM provider for tests and benchmarks (never shipped to a pod).

It speaks the OpenAI, Anthropic and Gemini wire formats, is steered per
request by ``x-fake-*`` headers or a ``/_steer/k=v,k=v`` path prefix, replays
recorded cassettes, and records every request it received so tests can assert
exactly what left the pod.
"""

from switchman_fake.server import FakeUpstream, Received
from switchman_fake.steering import Steering

__all__ = ["FakeUpstream", "Received", "Steering"]
