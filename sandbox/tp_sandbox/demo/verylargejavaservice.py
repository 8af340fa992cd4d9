"""VeryLargeJavaService: the web page of the demo, composed from the other two services.

``GET /`` renders a page in the colour that dataprocessingservice answers and the
record count of verylargedatastore; ``GET /api/status`` gives the same as JSON. The
services are called by their short DNS names, which resolve through the pod's
resolv.conf search path (`<ns>.svc.cluster.local`); `DATAPROCESSING_URL` and
`DATASTORE_URL` override them.
"""

from __future__ import annotations

import html
import os
from typing import Any

import aiohttp
from aiohttp import web
from tp_protocol.settings import get_settings

from tp_sandbox.demo._serve import new_app, serve

PORT = 8080

URLS_KEY = web.AppKey("urls", dict)


async def _fetch(url: str) -> tuple[Any, str | None]:
    """(decoded JSON, None) or (None, one-line reason)."""
    try:
        timeout = aiohttp.ClientTimeout(total=get_settings().node.demo_call_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url) as resp:
            if resp.status != 200:
                return None, f"{url} answered HTTP {resp.status}"
            return await resp.json(content_type=None), None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"{url}: {type(exc).__name__}: {exc}"


async def _status(app: web.Application) -> dict[str, Any]:
    urls = app[URLS_KEY]
    color, color_error = await _fetch(urls["color"])
    data, data_error = await _fetch(urls["data"])
    return {
        "color": color,
        "records": len(data["records"]) if isinstance(data, dict) else None,
        "errors": [e for e in (color_error, data_error) if e],
    }


async def status(request: web.Request) -> web.Response:
    return web.json_response(await _status(request.app))


async def page(request: web.Request) -> web.Response:
    st = await _status(request.app)
    color = html.escape(str(st["color"] or "gray"))
    errors = "".join(f"<li>{html.escape(e)}</li>" for e in st["errors"])
    body = (
        "<!doctype html><html><head><title>EdgyCorp WebApp</title></head><body>"
        f'<h1 style="color: {color}">Welcome to the EdgyCorp WebApp</h1>'
        f"<p>Color from dataprocessingservice: <b>{color}</b></p>"
        f"<p>Records in verylargedatastore: {st['records']}</p>"
        f"<ul>{errors}</ul></body></html>\n"
    )
    return web.Response(text=body, content_type="text/html")


def make_app(color_url: str | None = None, data_url: str | None = None) -> web.Application:
    app = new_app()
    app[URLS_KEY] = {
        "color": color_url or os.environ.get(
            "DATAPROCESSING_URL", "http://dataprocessingservice:3000") + "/color",
        "data": data_url or os.environ.get(
            "DATASTORE_URL", "http://verylargedatastore:8080") + "/data",
    }
    app.router.add_get("/", page)
    app.router.add_get("/api/status", status)
    return app


def main() -> None:
    serve(make_app(), PORT, "verylargejavaservice")


if __name__ == "__main__":
    main()
