"""A daemon's link and an agent's link server, both real, over loopback TCP: which keys
the link serves, and what status says while the agent does not know a key yet (as
after a manager restart, when the daemon re-creates its intercepts before the agent's
new manager has told it of them)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agenttest import wait_for
from tp_cluster.agent.intercepts import Intercept, Registry
from tp_cluster.agent.link_server import LinkServer
from tp_daemon.intercepts.agentlink import AgentLinks
from tp_daemon.intercepts.base import Book
from tp_daemon.intercepts.relay import ClientRelay
from tp_protocol import manager_pb2 as mpb
from tp_protocol.pumps import TcpStream
from tp_protocol.settings import get_settings

pytestmark = pytest.mark.timeout(30)

POD = mpb.AgentLinkPod(namespace="demo", pod="web-abc", port=1)


def _info(name: str, key: str) -> mpb.InterceptInfo:
    return mpb.InterceptInfo(
        id=f"c-1:{name}", state=mpb.INTERCEPT_STATE_ACTIVE, link_key=key, link_pods=[POD],
        spec=mpb.InterceptSpec(name=name, mechanism=mpb.MECHANISM_HTTP, target_port=9))


@pytest.fixture
async def linked() -> AsyncIterator[tuple[Registry, Book, AgentLinks]]:
    settings = dataclasses.replace(get_settings().intercept, link_backoff=0.05)
    registry = Registry()
    server = LinkServer(registry, settings, port=0)
    port = await server.start()
    book = Book()
    links = AgentLinks(settings, ClientRelay(settings), book)

    async def opener(namespace: str, pod: str, _: int) -> Any:
        assert (namespace, pod) == (POD.namespace, POD.pod)
        return await TcpStream.open("127.0.0.1", port)

    links.opener = opener
    try:
        yield registry, book, links
    finally:
        await links.stop()
        await server.stop()


def _states(links: AgentLinks, book: Book) -> dict[str, str]:
    return {ic.spec.name: ic.link_state
            for ic in links.annotate([mpb.InterceptInfo.FromString(i.SerializeToString())
                                      for i in book.mine.values()])}


async def test_a_key_the_agent_learns_later_is_shown_again_and_then_served(
        linked: tuple[Registry, Book, AgentLinks]) -> None:
    registry, book, links = linked
    alice, bob = _info("alice", "key-a"), _info("bob", "key-b")
    registry.replace([Intercept.from_info(alice, 80)])   # bob's not told to the agent yet
    book.mine = {"alice": alice, "bob": bob}
    links.sync()
    await wait_for(lambda: _states(links, book)["alice"].startswith("open to "))
    states = _states(links, book)
    assert states["bob"].startswith("opening (the agent of demo/web-abc does not know"), states

    registry.replace([Intercept.from_info(alice, 80), Intercept.from_info(bob, 80)])
    both = {"alice": "open to demo/web-abc", "bob": "open to demo/web-abc"}
    await wait_for(lambda: _states(links, book) == both)


async def test_a_re_created_intercept_is_not_shown_open_until_the_agent_accepts_its_key(
        linked: tuple[Registry, Book, AgentLinks]) -> None:
    registry, book, links = linked
    old = _info("alice", "key-1")
    registry.replace([Intercept.from_info(old, 80)])
    book.mine = {"alice": old}
    links.sync()
    await wait_for(lambda: _states(links, book)["alice"].startswith("open to "))

    # the daemon re-created it (new id, new key) before the agent heard of it
    new = _info("alice", "key-2")
    new.id = "c-2:alice"
    book.mine = {"alice": new}
    links.sync()
    assert not _states(links, book)["alice"].startswith("open to ")
    registry.replace([Intercept.from_info(new, 80)])
    await wait_for(lambda: _states(links, book)["alice"] == "open to demo/web-abc")
