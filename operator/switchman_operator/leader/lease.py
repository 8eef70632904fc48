"""The Lease at the I/O edge: coordination.k8s.io/v1 through the operator's kubernetes client.

Reads return ``None`` for a missing Lease; writes are PUTs with the read
``resourceVersion`` (or a POST for a new Lease), so two candidates racing for
the same record cannot both win: the loser gets ``Conflict``. Calls run in a
worker thread with a client-side timeout, like everything in ``kube.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..kube import Conflict, NotFound
from .decide import LeaseRecord

__all__ = ["LeaseApi", "from_body", "to_body"]

_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _time(raw: Any) -> dt.datetime | None:
    if not raw:
        return None
    text = str(raw).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _fmt(t: dt.datetime | None) -> str | None:
    return None if t is None else t.astimezone(dt.UTC).strftime(_MICRO)


def from_body(body: dict[str, Any]) -> LeaseRecord:
    spec = body.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_time(spec.get("acquireTime")),
        renew_time=_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((body.get("metadata") or {}).get("resourceVersion") or ""),
    )


def to_body(namespace: str, name: str, record: LeaseRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if record.resource_version:
        metadata["resourceVersion"] = record.resource_version
    spec = {
        "holderIdentity": record.holder or None,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": _fmt(record.acquire_time),
        "renewTime": _fmt(record.renew_time),
        "leaseTransitions": record.transitions,
    }
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {k: v for k, v in spec.items() if v is not None},
    }


class LeaseApi:
    """get / create / replace of one Lease."""

    def __init__(self, api_client: Any, namespace: str, name: str, timeout: float) -> None:
        self.api = kubernetes.client.CoordinationV1Api(api_client)
        self.namespace, self.name, self.timeout = namespace, name, timeout

    def _call(self, fn: Any, *args: Any) -> dict[str, Any]:
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self.timeout)
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(str(exc.reason)) from None
            if exc.status == 404:
                raise NotFound(str(exc.reason)) from None
            raise
        data: dict[str, Any] = json.loads(response.data)
        return data

    async def get(self) -> LeaseRecord | None:
        try:
            body = await asyncio.to_thread(
                self._call, self.api.read_namespaced_lease, self.name, self.namespace
            )
        except NotFound:
            return None
        return from_body(body)

    async def write(self, record: LeaseRecord, create: bool) -> LeaseRecord:
        """POST (``create``) or PUT with ``record.resource_version`` as the precondition."""
        body = to_body(self.namespace, self.name, record)
        if create:
            body["metadata"].pop("resourceVersion", None)
            out = await asyncio.to_thread(
                self._call, self.api.create_namespaced_lease, self.namespace, body
            )
        else:
            out = await asyncio.to_thread(
                self._call, self.api.replace_namespaced_lease, self.name, self.namespace, body
            )
        return from_body(out)
