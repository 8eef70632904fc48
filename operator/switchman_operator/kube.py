"""The operator's Kubernetes API calls outside kopf (which only watches).

The ``kubernetes`` client is synchronous; every call runs in a worker thread so
the event loop that serves the gRPC streams never blocks. Responses are read
as plain JSON dicts (``_preload_content=False``): cheaper than the client's
model objects and the same shape kopf hands to handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import kubernetes
import orjson
from kubernetes.client.exceptions import ApiException

from .api import GROUP, VERSION

__all__ = ["Conflict", "Kube", "NotFound", "load_api_client"]

PLURALS = {
    "ModelPool": "modelpools",
    "RoutingPolicy": "routingpolicies",
    "TeamBudget": "teambudgets",
}


class Conflict(Exception):
    """The object changed since it was read (HTTP 409): re-read and retry."""


class NotFound(Exception):
    """HTTP 404."""


def load_api_client(kubeconfig: str | None = None) -> Any:
    """In-cluster config when running in a pod, else the kubeconfig (KUBECONFIG)."""
    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=config
        )
    config.connection_pool_maxsize = 32
    return kubernetes.client.ApiClient(config)


def _json(response: Any) -> dict[str, Any]:
    # orjson: a TeamBudget of a 1,000-sidecar team is ~60 KB, read back after every
    # usage commit; json.loads was 8% of the operator's loop at that scale.
    data: dict[str, Any] = orjson.loads(response.data)
    return data


def _call(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        return _json(fn(*args, _preload_content=False, **kwargs))
    except ApiException as exc:
        if exc.status == 409:
            raise Conflict(str(exc.reason)) from None
        if exc.status == 404:
            raise NotFound(str(exc.reason)) from None
        raise


class Kube:
    """Async facade over the few API calls the control plane makes."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.auth = kubernetes.client.AuthenticationV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    async def token_review(self, token: str, audiences: list[str]) -> dict[str, Any]:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        out = await asyncio.to_thread(_call, self.auth.create_token_review, body)
        status: dict[str, Any] = out.get("status") or {}
        return status

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(_call, self.core.read_namespaced_pod, name, namespace)

    async def pod_names(self, namespace: str) -> set[str]:
        out = await asyncio.to_thread(_call, self.core.list_namespaced_pod, namespace)
        return {item["metadata"]["name"] for item in out.get("items") or []}

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(_call, self.core.read_namespaced_secret, name, namespace)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(_call, self.core.read_namespaced_config_map, name, namespace)

    async def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await asyncio.to_thread(
            _call,
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
        )

    async def list_objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every object of a Switchman kind (in one namespace, or all), with ``kind`` set."""
        if namespace:
            out = await asyncio.to_thread(
                _call,
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
            )
        else:
            out = await asyncio.to_thread(
                _call, self.custom.list_cluster_custom_object, GROUP, VERSION, PLURALS[kind]
            )
        return [{**item, "kind": kind} for item in out.get("items") or []]

    async def replace_status(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT .../status; ``metadata.resourceVersion`` is the precondition (409 → Conflict)."""
        meta = body["metadata"]
        return await asyncio.to_thread(
            _call,
            self.custom.replace_namespaced_custom_object_status,
            GROUP,
            VERSION,
            meta["namespace"],
            PLURALS[kind],
            meta["name"],
            dict(body),
        )

    async def merge_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch only the given status fields (conditions, sync counts)."""
        return await asyncio.to_thread(
            _call,
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
            {"status": dict(status)},
        )

    async def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``obj`` (best effort: events are advisory)."""
        meta = obj["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "switchman-operator"},
        }
        with contextlib.suppress(ApiException, NotFound, Conflict):
            await asyncio.to_thread(
                _call, self.core.create_namespaced_event, meta["namespace"], body
            )
