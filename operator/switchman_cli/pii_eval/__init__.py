"""Scoring PII detectors on labelled texts (``switchman pii eval``)."""
