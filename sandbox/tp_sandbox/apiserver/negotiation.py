"""Response content negotiation: a client whose Accept puts
`application/vnd.kubernetes.protobuf` first gets protobuf, as from a real API server.

The handlers answer JSON; this middleware re-encodes a finished JSON response when the
client prefers protobuf and the object has a protobuf form (`protobuf.encode`). Anything
else (tables, discovery, custom resources) stays JSON, which clients accept through the
`application/json` they list second. Watch streams choose their framing in the watch handler
(`protobuf.watch_frame`); `/openapi/v2` negotiates its own protobuf form.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from tp_sandbox.apiserver import protobuf

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if (not isinstance(resp, web.Response) or resp.content_type != "application/json"
            or not protobuf.prefers_protobuf(request.headers.get("Accept", ""))
            or not isinstance(resp.body, bytes)):
        return resp
    try:
        obj = json.loads(resp.body)
        body = protobuf.encode(obj) if isinstance(obj, dict) else None
    except (ValueError, protobuf.NotEncodable) as exc:
        log.debug("answering JSON to a protobuf client for %s: %s", request.path, exc)
        return resp
    if body is None:
        return resp
    out = web.Response(body=body, status=resp.status,
                       content_type=protobuf.MEDIA_TYPE)
    for name, value in resp.headers.items():
        if name.lower() not in ("content-type", "content-length"):
            out.headers.add(name, value)
    return out
