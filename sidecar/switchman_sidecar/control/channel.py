"""The gRPC channel to the operator, credentials and reconnect backoff."""

from __future__ import annotations

import random
from collections.abc import Iterator

import grpc

from .settings import ControlSettings

__all__ = ["auth_metadata", "backoff_delays", "describe_error", "open_channel"]


def open_channel(settings: ControlSettings) -> grpc.aio.Channel:
    options: list[tuple[str, str | int]] = [
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Our own backoff decides when to retry; do not let the channel sit in a long one.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]
    if settings.insecure:
        return grpc.aio.insecure_channel(settings.address, options=options)
    root = settings.ca_file.read_bytes() if settings.ca_file else None
    if settings.server_name:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    return grpc.aio.secure_channel(
        settings.address, grpc.ssl_channel_credentials(root_certificates=root), options=options
    )


def auth_metadata(settings: ControlSettings) -> tuple[tuple[str, str], ...]:
    token = settings.token_file.read_text().strip()
    return (("authorization", f"Bearer {token}"),)


def backoff_delays(initial: float, cap: float) -> Iterator[float]:
    """Exponential backoff with full jitter (AWS architecture blog), forever."""
    attempt = 0
    while True:
        yield random.uniform(0, min(cap, initial * 2**attempt))
        attempt += 1


def describe_error(exc: BaseException) -> str:
    """One line for logs and /config_dump: the gRPC status, else the exception."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
