"""`python -m tp_cluster.agent`: run the traffic-agent sidecar until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from tp_protocol import VERSION
from tp_protocol.aio import until_stopped
from tp_protocol.settings import get_settings

from tp_cluster.agent import AgentError
from tp_cluster.agent.config import from_env
from tp_cluster.agent.runtime import Agent

log = logging.getLogger("tp_cluster.agent")


async def serve() -> int:
    try:
        config = from_env()
    except AgentError as exc:
        print(f"traffic-agent: {exc}", file=sys.stderr)
        return 2
    agent = Agent(config)
    try:
        await agent.start()
    except OSError as exc:
        print(f"traffic-agent: cannot listen: {exc}; is the port taken by the app?",
              file=sys.stderr)
        return 1
    log.info("traffic-agent %s for %s.%s (pod %s) up", VERSION, config.name, config.namespace,
             config.pod_name)
    try:
        await until_stopped()
    finally:
        await agent.stop(get_settings().connect.manager_stop_grace)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tp_cluster.agent",
        description="tp-jupyter traffic-agent sidecar; configured by the environment that "
                    "tp_cluster.injector writes (APP_PORTS, MANAGER_ADDRESS, ...)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if get_settings().intercept.agent_uvloop:
        import uvloop

        return uvloop.run(serve())
    return asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
