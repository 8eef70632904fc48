"""The pod and namespace metadata keys injection reads and writes, in one place.

Users type these; docs/install.md lists them. Keeping them here means the
decision, the overrides and the template agree on the spelling.
"""

from __future__ import annotations

__all__ = [
    "ANNOTATION_APP_ENV",
    "ANNOTATION_INJECT",
    "ANNOTATION_LOG_LEVEL",
    "ANNOTATION_OPERATOR_CA",
    "ANNOTATION_PORT",
    "ANNOTATION_PROXY_CPU",
    "ANNOTATION_PROXY_CPU_LIMIT",
    "ANNOTATION_PROXY_MEMORY",
    "ANNOTATION_PROXY_MEMORY_LIMIT",
    "ANNOTATION_STATUS",
    "NAMESPACE_LABEL",
    "NAMESPACE_LABEL_ENABLED",
]

#: Pod annotation: "true" asks for the sidecar, "false" opts out (wins over the namespace).
ANNOTATION_INJECT = "switchman.io/inject"
#: Namespace label: every pod in a namespace labelled ``enabled`` gets the sidecar.
NAMESPACE_LABEL = "switchman.io/injection"
NAMESPACE_LABEL_ENABLED = "enabled"

#: Per-pod overrides of the sidecar's resources (Kubernetes quantities).
ANNOTATION_PROXY_CPU = "switchman.io/proxy-cpu"
ANNOTATION_PROXY_CPU_LIMIT = "switchman.io/proxy-cpu-limit"
ANNOTATION_PROXY_MEMORY = "switchman.io/proxy-memory"
ANNOTATION_PROXY_MEMORY_LIMIT = "switchman.io/proxy-memory-limit"
#: The sidecar's application port (the apps' base URLs follow it).
ANNOTATION_PORT = "switchman.io/proxy-port"
#: The sidecar's log level: debug, info, warning or error.
ANNOTATION_LOG_LEVEL = "switchman.io/log-level"
#: "false" keeps the OPENAI_/ANTHROPIC_ variables out of the app containers.
ANNOTATION_APP_ENV = "switchman.io/inject-app-env"

#: Written by the webhook: marks an injected pod (for humans and `kubectl get -o`).
ANNOTATION_STATUS = "switchman.io/status"
#: Written by the webhook: the operator's CA (PEM), projected into the sidecar as a file.
ANNOTATION_OPERATOR_CA = "switchman.io/operator-ca"
