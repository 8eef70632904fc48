"""Sidecar injection as a pure, staged pipeline (should inject? → render → merge → patch).

No Kubernetes client and no I/O here: the webhook package feeds it
AdmissionReview contents and the golden tests feed it YAML files.
"""

from __future__ import annotations

from .decide import Decision, should_inject
from .merge import merge
from .overrides import apply_overrides, parse_quantity
from .patch import json_patch
from .pipeline import Outcome, inject
from .render import Rendered, Template, TemplateError, load_template, render
from .values import InjectionValues, ValuesError

__all__ = [
    "Decision",
    "InjectionValues",
    "Outcome",
    "Rendered",
    "Template",
    "TemplateError",
    "ValuesError",
    "apply_overrides",
    "inject",
    "json_patch",
    "load_template",
    "merge",
    "parse_quantity",
    "render",
    "should_inject",
]
