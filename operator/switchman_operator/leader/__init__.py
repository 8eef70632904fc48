"""Lease-based leader election.

Pure decisions in ``decide.py``, the Lease I/O in ``lease.py``, the loop in ``elector.py``.
"""
