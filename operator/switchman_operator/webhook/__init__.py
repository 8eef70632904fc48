"""The mutating admission webhook that injects the sidecar (TLS, AdmissionReview v1).

I/O around the pure ``switchman_operator.injection`` pipeline: the HTTPS
server, the certificates (made and rotated by the operator, or mounted), and
the template reloaded from the chart's ConfigMap.
"""

from __future__ import annotations

from .admission import Reviewed, ReviewError, review
from .service import run_webhook
from .settings import WebhookSettings

__all__ = ["ReviewError", "Reviewed", "WebhookSettings", "review", "run_webhook"]
