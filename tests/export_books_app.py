"""A developer's local service for the export tests: a tiny books API on $PORT.

    GET  /color   "blue" (the demo's route, so the intercepted Service keeps its meaning)
    GET  /books   the books so far        POST /books   201 {"id", "title", "created"}
    GET  /boom    503 {"error": "overloaded"}

`BREAK=1` is the breaking change a generated test must catch: titles come back upper-cased.
Run: `python tests/export_books_app.py` (inside a sandbox laptop).
"""

from __future__ import annotations

import itertools
import json
import os
import time

from aiohttp import web

BOOKS: list[dict[str, object]] = []
IDS = itertools.count(1)


def _title(title: str) -> str:
    return title.upper() if os.environ.get("BREAK") == "1" else title


async def color(_request: web.Request) -> web.Response:
    return web.json_response("blue")


async def books(_request: web.Request) -> web.Response:
    return web.json_response({"books": [{"title": b["title"]} for b in BOOKS]})


async def add_book(request: web.Request) -> web.Response:
    try:
        title = str((await request.json())["title"])
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": "send {\"title\": ...}"}, status=400)
    book = {"id": next(IDS), "title": _title(title), "created": time.time()}
    BOOKS.append(book)
    return web.json_response(book, status=201)


async def boom(_request: web.Request) -> web.Response:
    return web.Response(text=json.dumps({"error": "overloaded"}), status=503,
                        content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/color", color)
    app.router.add_get("/books", books)
    app.router.add_post("/books", add_book)
    app.router.add_get("/boom", boom)
    web.run_app(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8081")),
                print=None)


if __name__ == "__main__":
    main()
