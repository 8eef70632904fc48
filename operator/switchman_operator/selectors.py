"""Label-selector matching (metav1.LabelSelector semantics), pure.

The compiler needs it to decide which RoutingPolicy applies to a pod; doing it
here rather than asking the API server keeps compilation a pure function.
"""

from __future__ import annotations

from collections.abc import Mapping

from .api.common import LabelSelector

__all__ = ["selector_matches"]


def selector_matches(selector: LabelSelector | None, labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy ``selector``; an empty or absent selector matches all."""
    if selector is None:
        return True
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        present = req.key in labels
        values = req.values or []
        if req.operator == "In" and not (present and labels[req.key] in values):
            return False
        if req.operator == "NotIn" and present and labels[req.key] in values:
            return False
        if req.operator == "Exists" and not present:
            return False
        if req.operator == "DoesNotExist" and present:
            return False
    return True
