"""A named local HTTP server for tests (imported by this unique module name; tests/ is on
sys.path: `pythonpath` in pyproject.toml): the app behind an agent, a developer's local code."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def http_server(name: str, port: int = 0) -> tuple[web.AppRunner, int]:
    """Answers `<name> <METHOD> <path> <body>`; `/status/N` answers N; `/slow` waits.

    Cleanup does not wait for connections an agent or daemon still holds."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.startswith("/status/"):
            return web.Response(status=int(request.path.rsplit("/", 1)[1]), text=name)
        if request.path == "/slow":
            await asyncio.sleep(0.2)
        text = f"{name} {request.method} {request.path_qs} {body.decode()}"
        return web.Response(text=text, headers={"x-served-by": name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
