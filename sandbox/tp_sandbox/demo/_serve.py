"""Running a demo app: port from `$PORT`, graceful SIGTERM, one log line per request.

aiohttp's `run_app` turns SIGTERM/SIGINT into a graceful shutdown (stop accepting,
let in-flight requests finish within the grace period), which is what the kubelet
expects before it escalates to SIGKILL.
"""

from __future__ import annotations

import logging
import os

from aiohttp import web
from tp_protocol.settings import get_settings


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def new_app() -> web.Application:
    """An application with `/healthz` (readiness probes) already routed."""
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return app


def serve(app: web.Application, default_port: int, name: str) -> None:
    """Serve `app` on 0.0.0.0:`$PORT` (else `default_port`) until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(message)s")
    raw = os.environ.get("PORT", str(default_port))
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name}: PORT={raw!r} is not a number; set PORT to a TCP port") from None
    logging.getLogger(name).info("listening on port %d", port)
    web.run_app(app, host=os.environ.get("HOST", "0.0.0.0"), port=port, print=None,
                shutdown_timeout=get_settings().node.demo_shutdown_grace,
                access_log=logging.getLogger(name))
