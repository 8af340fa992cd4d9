"""Errors of the sandbox controllers.

    ControllerError                 anything a controller cannot do
    ├── KubeError(status, reason)   the API answered with a failure `Status`
    │   ├── NotFound                404: the object is gone (usually fine: nothing to do)
    │   ├── AlreadyExists           409 AlreadyExists: a create raced another one
    │   ├── Conflict                409 Conflict: stale resourceVersion -> re-read and retry
    │   ├── Expired                 410: a watch resourceVersion is too old -> relist
    │   └── Invalid                 422: the object was refused (a bug on our side)
    └── Unreachable                 no answer from the API server (connection refused, timeout)

Only `kube.py` raises `KubeError`s (translated from the client's `ApiException` once,
chained with `from`); controllers catch the specific ones and let the rest reach the
work queue, which logs them and retries with back-off.
"""

from __future__ import annotations


class ControllerError(Exception):
    """Base of every controller error."""


class KubeError(ControllerError):
    """The API server answered with a failure Status."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class AlreadyExists(KubeError):
    pass


class Conflict(KubeError):
    pass


class Expired(KubeError):
    pass


class Invalid(KubeError):
    pass


class Unreachable(ControllerError):
    """The API server could not be reached; retried with back-off."""
