"""VeryLargeDataStore: a (small) data endpoint, ``GET /data``."""

from __future__ import annotations

from aiohttp import web

from tp_sandbox.demo._serve import new_app, serve

PORT = 8080

RECORDS = [
    {"id": 1, "item": "widget", "quantity": 12},
    {"id": 2, "item": "gadget", "quantity": 7},
    {"id": 3, "item": "gizmo", "quantity": 42},
]


async def data(_request: web.Request) -> web.Response:
    return web.json_response({"source": "verylargedatastore", "records": RECORDS})


def make_app() -> web.Application:
    app = new_app()
    app.router.add_get("/data", data)
    return app


def main() -> None:
    serve(make_app(), PORT, "verylargedatastore")


if __name__ == "__main__":
    main()
