"""AdmissionReview v1 in, AdmissionReview v1 out: the pure edge of the webhook.

Anything that is not a Pod CREATE is allowed untouched (the webhook
configuration only sends Pod CREATEs, but a misconfigured one must not break
the cluster). A refused pod gets ``allowed: false`` with a message the user
sees in ``kubectl apply``; a malformed review is a ``ReviewError`` (HTTP 400).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..injection import InjectionValues, Outcome, Template, inject

__all__ = ["ReviewError", "Reviewed", "review"]


class ReviewError(ValueError):
    """The request body is not an AdmissionReview v1 we can answer."""


@dataclass(frozen=True, slots=True)
class Reviewed:
    response: dict[str, Any]
    #: What happened: "injected", "unchanged" (already injected), "skipped", "refused",
    #: "ignored" (not a pod create).
    verdict: str
    reason: str
    pod: str


def _pod_ref(namespace: str, pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    name = meta.get("name") or f"{meta.get('generateName', '')}<generated>"
    return f"{namespace}/{name}"


def review(
    body: Any,
    *,
    namespace_enabled: bool,
    template: Template,
    values: InjectionValues,
    operator_ca: str | None,
    operator_namespace: str,
) -> Reviewed:
    if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
        raise ReviewError("expected an AdmissionReview")
    if body.get("apiVersion") != "admission.k8s.io/v1":
        raise ReviewError("only admission.k8s.io/v1 AdmissionReview is served")
    request = body.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ReviewError("AdmissionReview without request.uid")
    uid = request["uid"]
    kind = (request.get("kind") or {}).get("kind")
    pod = request.get("object")
    namespace = str(request.get("namespace") or "")
    if kind != "Pod" or request.get("operation") != "CREATE" or not isinstance(pod, dict):
        return Reviewed(_envelope({"uid": uid, "allowed": True}), "ignored", "not a pod create", "")
    ref = _pod_ref(namespace, pod)
    outcome: Outcome = inject(
        pod,
        namespace,
        namespace_enabled=namespace_enabled,
        template=template,
        values=values,
        operator_ca=operator_ca,
        operator_namespace=operator_namespace,
    )
    response: dict[str, Any] = {"uid": uid, "allowed": outcome.allowed}
    if not outcome.allowed:
        response["status"] = {"code": 400, "reason": "BadRequest", "message": outcome.message}
        return Reviewed(_envelope(response), "refused", outcome.message, ref)
    if outcome.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(
            json.dumps(outcome.patch, separators=(",", ":")).encode()
        ).decode()
    if outcome.warnings:
        response["warnings"] = [f"switchman: {w}" for w in outcome.warnings]
    # Reinvocation (or a pod created from an injected one) yields an empty patch.
    verdict = "skipped" if not outcome.injected else "injected" if outcome.patch else "unchanged"
    return Reviewed(_envelope(response), verdict, outcome.message, ref)


def _envelope(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
