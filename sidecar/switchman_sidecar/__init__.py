"""The Switchman sidecar: the data plane beside each workload pod."""

from switchman_sidecar import _compiled

_compiled.extend(__path__)  # the request path, compiled with mypyc when built (_compiled.py)
