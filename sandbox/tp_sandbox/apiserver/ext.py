"""The schema-aware parts the handlers call (defaults, validation, patch, OpenAPI),
behind one small facade so the REST code names one module for all of them."""

from __future__ import annotations

from typing import Any

from tp_sandbox.apiserver import (
    crd,
    defaults,
    openapi,
    openapi_v2,
    openapi_v2_proto,
    patch,
    validation,
)
from tp_sandbox.apiserver.resources import ResourceType

Obj = dict[str, Any]


def apply_defaults(obj: Obj, rt: ResourceType) -> None:
    defaults.apply_defaults(obj, rt)


def validate(obj: Obj, rt: ResourceType, old: Obj | None, field_validation: str) -> list[str]:
    if rt.custom is not None:  # a CustomResourceDefinition's schema, not a built-in one
        crd.validate(obj, rt)
        return []
    if rt.kind == crd.KIND:
        crd.check(obj)
    return validation.validate(obj, rt, old=old, field_validation=field_validation)


def apply_patch(current: Obj, body: bytes, content_type: str, rt: ResourceType) -> Obj:
    return patch.apply_patch(current, body, content_type, rt)


def openapi_index() -> Obj | None:
    return openapi.v3_index()


def openapi_document(group: str, version: str) -> bytes | None:
    """The serialised document (the bytes its `?hash=` names), or None when not served."""
    return openapi.v3_document_bytes(group, version)


def openapi_v2_document() -> bytes:
    """The serialised Swagger 2.0 document (`/openapi/v2`)."""
    return openapi_v2.document_bytes()


def openapi_v2_protobuf(accept: str) -> tuple[bytes, str] | None:
    """The gnostic protobuf `/openapi/v2` and its media type when Accept asks for it."""
    if not openapi_v2_proto.wants_protobuf(accept):
        return None
    return (openapi_v2_proto.document_bytes(openapi_v2.document_bytes()),
            openapi_v2_proto.RESPONSE_MEDIA_TYPE)
