"""Who is on the other end of a stream: ServiceAccount token → pod.

A sidecar presents its pod's projected ServiceAccount token (audience
``switchman``) as ``authorization: Bearer …``. TokenReview proves it; a token
bound to a Pod object carries the pod's name and uid, and the pod is read to
learn its labels — the labels a policy selects on come from the API server,
never from the sidecar. Results are cached briefly by token digest so that a
reconnect storm after an operator restart does not become a TokenReview storm.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from typing import Any, Protocol

from ..resources import PodInfo

__all__ = [
    "AUDIENCE",
    "AuthError",
    "Identifier",
    "StaticIdentifier",
    "TokenReviewIdentifier",
    "bearer_token",
]

AUDIENCE = "switchman"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
SA_PREFIX = "system:serviceaccount:"


class AuthError(Exception):
    """The caller is not a sidecar we serve; the message is safe to return to it."""


class Identifier(Protocol):
    async def identify(self, token: str) -> PodInfo: ...


class ReviewApi(Protocol):
    async def token_review(self, token: str, audiences: list[str]) -> dict[str, Any]: ...
    async def get_pod(self, namespace: str, name: str) -> dict[str, Any]: ...


def bearer_token(metadata: Any) -> str:
    """The bearer token from gRPC invocation metadata; AuthError when absent."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise AuthError("missing authorization: Bearer <service-account token>")


class TokenReviewIdentifier:
    def __init__(self, api: ReviewApi, audience: str = AUDIENCE, cache_seconds: float = 60.0):
        self.api = api
        self.audience = audience
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, PodInfo]] = {}

    async def identify(self, token: str) -> PodInfo:
        digest = hashlib.sha256(token.encode()).hexdigest()
        hit = self._cache.get(digest)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        pod = await self._review(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic() + self.cache_seconds, pod)
        return pod

    async def _review(self, token: str) -> PodInfo:
        status = await self.api.token_review(token, [self.audience])
        if not status.get("authenticated"):
            raise AuthError(f"token rejected: {status.get('error') or 'not authenticated'}")
        if self.audience not in (status.get("audiences") or [self.audience]):
            raise AuthError(f"token is not for audience {self.audience}")
        user = status.get("user") or {}
        username = str(user.get("username", ""))
        if not username.startswith(SA_PREFIX):
            raise AuthError("only ServiceAccount tokens are accepted")
        namespace, _, sa = username[len(SA_PREFIX) :].partition(":")
        extra: Mapping[str, list[str]] = user.get("extra") or {}
        names, uids = extra.get(POD_NAME) or [], extra.get(POD_UID) or []
        if not names:
            raise AuthError("token is not bound to a pod (use a projected token)")
        try:
            pod = await self.api.get_pod(namespace, names[0])
        except Exception as exc:
            raise AuthError(f"pod {namespace}/{names[0]} not found") from exc
        meta = pod.get("metadata") or {}
        if uids and meta.get("uid") != uids[0]:
            raise AuthError(f"pod {namespace}/{names[0]} was replaced; token is stale")
        if (pod.get("spec") or {}).get("serviceAccountName", "default") != sa:
            raise AuthError("token's ServiceAccount does not run that pod")
        return PodInfo(
            namespace, names[0], dict(meta.get("labels") or {}), str(meta.get("uid")), sa
        )


class StaticIdentifier:
    """Fixed token → pod map, for component tests and the benchmark (no API server)."""

    def __init__(self, pods: Mapping[str, PodInfo]) -> None:
        self.pods = dict(pods)

    async def identify(self, token: str) -> PodInfo:
        try:
            return self.pods[token]
        except KeyError:
            raise AuthError("unknown token") from None
