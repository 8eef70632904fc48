"""Compiled hot paths of the Switchman sidecar (Rust, PyO3): see native/README.md.

The Python implementations in ``switchman_protocol`` and ``switchman_sidecar``
stay the reference; each compiled function is tested to give the same results.
"""
