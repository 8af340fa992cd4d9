"""`python -m tp_cluster.agent` as the image runs it: configured by env, stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import pytest
from agenttest import Http, free_port, wait_for

pytestmark = pytest.mark.timeout(60)


def _agent_sessions(manager: Any) -> list[Any]:
    return [s for s in manager.server.state.sessions.values() if s.kind == "agent"]


async def test_the_agent_process_serves_arrives_and_departs_on_sigterm(
        manager: Any, app_port: int) -> None:
    port = free_port()
    env = {**os.environ, "AGENT_NAME": "web", "AGENT_NAMESPACE": "demo", "POD_NAME": "web-1",
           "POD_IP": "10.244.0.9", "MANAGER_ADDRESS": f"127.0.0.1:{manager.port}",
           "AGENT_LISTEN_HOST": "127.0.0.1", "TP_APP_ENV_COLOR": "blue",
           "APP_PORTS": json.dumps([{"name": "http", "port": port, "app_port": app_port}])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tp_cluster.agent", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await wait_for(lambda: bool(_agent_sessions(manager)), within=15, what="arrival")
        assert _agent_sessions(manager)[0].agent.pod_name == "web-1"
        http = await Http.connect(port)
        assert (await http.request("GET", "/hello"))[2] == b"app GET /hello "
        await http.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await wait_for(lambda: not _agent_sessions(manager), what="the agent to depart")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_an_agent_without_its_environment_says_what_is_missing() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("APP_PORTS", "AGENT_NAME")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tp_cluster.agent", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().strip() == ("traffic-agent: $APP_PORTS is not set: the traffic-agent "
                                    "must be injected by tp (see tp_cluster.injector)")
