"""The webhook's few API calls: its CA Secret and its webhook configuration's caBundle.

Synchronous client calls run in a worker thread (the event loop serves
admission requests). The chart creates the Secret empty so that the operator
needs only get/update on that one name (no create) and ``helm uninstall``
removes it; without the chart (local runs) it is created.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

__all__ = ["WebhookKube"]


class WebhookKube:
    def __init__(self, api_client: Any) -> None:
        # Any: raw JSON responses (_preload_content=False), not the client's models.
        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.admission: Any = kubernetes.client.AdmissionregistrationV1Api(api_client)

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            try:
                r = self.core.read_namespaced_secret(name, namespace, _preload_content=False)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            out: dict[str, Any] = json.loads(r.data)
            return out

        return await asyncio.to_thread(call)

    async def write_secret(
        self, namespace: str, name: str, data: dict[str, bytes], resource_version: str | None
    ) -> bool:
        """Create (no resourceVersion) or update with a precondition; False if someone won."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }

        def call() -> bool:
            try:
                if resource_version is None:
                    self.core.create_namespaced_secret(namespace, body, _preload_content=False)
                else:
                    body["metadata"]["resourceVersion"] = resource_version  # type: ignore[index]
                    self.core.patch_namespaced_secret(
                        name,
                        namespace,
                        body,
                        _preload_content=False,
                        _content_type="application/merge-patch+json",
                    )
            except ApiException as exc:
                if exc.status == 409:
                    return False
                raise
            return True

        return await asyncio.to_thread(call)

    async def set_ca_bundle(self, config_name: str, ca_pem: bytes) -> bool:
        """Point every webhook of the configuration at ``ca_pem``; True if anything changed."""
        bundle = base64.b64encode(ca_pem).decode()

        def call() -> bool:
            r = self.admission.read_mutating_webhook_configuration(
                config_name, _preload_content=False
            )
            config = json.loads(r.data)
            ops: list[dict[str, Any]] = []
            for i, hook in enumerate(config.get("webhooks") or []):
                if (hook.get("clientConfig") or {}).get("caBundle") != bundle:
                    ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook["name"]})
                    ops.append(
                        {
                            "op": "add",
                            "path": f"/webhooks/{i}/clientConfig/caBundle",
                            "value": bundle,
                        }
                    )
            if ops:
                self.admission.patch_mutating_webhook_configuration(
                    config_name,
                    ops,
                    _preload_content=False,
                    _content_type="application/json-patch+json",
                )
            return bool(ops)

        return await asyncio.to_thread(call)
