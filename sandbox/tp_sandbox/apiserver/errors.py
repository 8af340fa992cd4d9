"""Kubernetes `Status` errors, as the API server returns them.

    ApiError(code, reason, message, details)     any non-2xx answer, rendered as a Status
    ├── NotFound             404 NotFound        "<plural>.<group> \"name\" not found"
    ├── AlreadyExists        409 AlreadyExists
    ├── Conflict             409 Conflict        stale resourceVersion
    ├── Invalid              422 Invalid         with field causes
    ├── BadRequest           400 BadRequest
    ├── Unauthorized         401 Unauthorized
    ├── Forbidden            403 Forbidden
    ├── MethodNotAllowed     405 MethodNotAllowed
    ├── Gone                 410 Expired         watch resourceVersion too old
    └── UnsupportedMediaType 415 UnsupportedMediaType
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    code = 500
    reason = "InternalError"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The `Status` object a real API server would send."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            # Go's omitempty: a core-group error has no "group" key, not an empty one.
            body["details"] = {k: v for k, v in self.details.items() if v not in ("", None)}
        return body


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


class NotFound(ApiError):
    code, reason = 404, "NotFound"

    @classmethod
    def of(cls, plural: str, group: str, name: str) -> NotFound:
        return cls(f'{_qualified(plural, group)} "{name}" not found',
                   {"name": name, "group": group, "kind": plural})


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"

    @classmethod
    def of(cls, plural: str, group: str, name: str) -> AlreadyExists:
        return cls(f'{_qualified(plural, group)} "{name}" already exists',
                   {"name": name, "group": group, "kind": plural})


class Conflict(ApiError):
    code, reason = 409, "Conflict"

    @classmethod
    def stale(cls, plural: str, group: str, name: str) -> Conflict:
        return cls(
            f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": '
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
            {"name": name, "group": group, "kind": plural},
        )


class Invalid(ApiError):
    code, reason = 422, "Invalid"

    @classmethod
    def of(cls, kind: str, group: str, name: str, causes: list[dict[str, str]]) -> Invalid:
        """`causes`: [{"reason": "FieldValueInvalid", "message": ..., "field": "spec.x"}]."""
        gk = f"{kind}.{group}" if group else kind
        parts = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"]
                          for c in causes)
        suffix = f"[{parts}]" if len(causes) > 1 else parts
        return cls(f'{gk} "{name}" is invalid: {suffix}',
                   {"name": name, "group": group, "kind": kind, "causes": causes})


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class Gone(ApiError):
    code, reason = 410, "Expired"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"
