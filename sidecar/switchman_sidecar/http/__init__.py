"""The sidecar's own HTTP layer: a lean server and a pooled upstream client."""
