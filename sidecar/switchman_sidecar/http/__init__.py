"""The sidecar's own HTTP layer: a lean server and a pooled upstream client."""

from switchman_sidecar import _compiled

_compiled.extend(__path__, "http")  # compiled modules first, when built
