"""DataProcessingService: ``GET /color`` answers the configured colour as JSON.

Like the seed's Go app, the answer is a JSON string (``"green"``); the environment
variable `COLOR` changes it, so a developer's local copy can answer ``"blue"``.
"""

from __future__ import annotations

import json
import os

from aiohttp import web

from tp_sandbox.demo._serve import new_app, serve

DEFAULT_COLOR = "green"
PORT = 3000


async def color(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps(request.app[COLOR_KEY]) + "\n",
                        content_type="application/json")


COLOR_KEY = web.AppKey("color", str)


def make_app(color_value: str | None = None) -> web.Application:
    app = new_app()
    app[COLOR_KEY] = color_value or os.environ.get("COLOR", DEFAULT_COLOR)
    app.router.add_get("/color", color)
    return app


def main() -> None:
    serve(make_app(), PORT, "dataprocessingservice")


if __name__ == "__main__":
    main()
