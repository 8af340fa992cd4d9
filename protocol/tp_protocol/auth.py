"""Kubernetes credentials on every call to the traffic-manager.

Callers carry their bearer token as gRPC metadata `authorization: Bearer <token>` (as
Telepresence does); the manager reviews it with TokenReview. `with_credentials` wraps a
stub so that every call, unary or streaming, gets the metadata from `token()`, asked at
each call because tokens rotate (projected service-account tokens, exec plugins).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

METADATA_KEY = "authorization"
"""gRPC metadata keys are lower case."""

T = TypeVar("T")


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """The metadata that carries `token` (none for an empty token)."""
    return ((METADATA_KEY, f"Bearer {token}"),) if token else ()


def token_of(metadata: Any) -> str:
    """The bearer token in a call's invocation metadata ("" when absent or malformed)."""
    for key, value in metadata or ():
        if key.lower() == METADATA_KEY and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer":
                return token.strip()
    return ""


class _Authorized:
    def __init__(self, stub: Any, token: Callable[[], str]) -> None:
        self._stub = stub
        self._token = token

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            extra = tuple(kwargs.pop("metadata", None) or ())
            return method(*args, metadata=bearer(self._token()) + extra, **kwargs)

        return call


def with_credentials(stub: T, token: Callable[[], str]) -> T:
    """`stub` whose every call carries `bearer(token())`."""
    wrapped: Any = _Authorized(stub, token)
    return wrapped  # type: ignore[no-any-return]
