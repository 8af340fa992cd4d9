"""Images from any registry: the rules of the options, the CLI grammar, the skew lines."""

from __future__ import annotations

import pytest
from tp_cluster import manifests
from tp_cluster.manager.state import agent_skew
from tp_daemon.errors import ConfigError
from tp_daemon.kube import choose_images, manager_skew
from tp_protocol import VERSION
from tp_protocol import manager_pb2 as mpb
from tp_protocol.settings import Settings

from tp_jupyter.cli import build_parser

TEAM = "registry.example.test:5000/team"


@pytest.mark.parametrize(("given", "expected"), [
    ("", f"ghcr.io/tp-jupyter/traffic-manager:{VERSION}"),
    ("my-manager", f"ghcr.io/tp-jupyter/my-manager:{VERSION}"),
    ("my-manager:2.0", "ghcr.io/tp-jupyter/my-manager:2.0"),
    ("quay.io/org/tm", f"quay.io/org/tm:{VERSION}"),
    ("localhost:5000/tm:dev", "localhost:5000/tm:dev"),
    ("quay.io/org/tm@sha256:" + "ab" * 32, "quay.io/org/tm@sha256:" + "ab" * 32),
])
def test_an_image_option_becomes_a_full_reference_tagged_with_the_clients_version(
        given: str, expected: str) -> None:
    assert manifests.image_ref(given, "traffic-manager") == expected


def test_the_registry_option_moves_both_images_and_keeps_the_version_tag() -> None:
    images = choose_images(registry=TEAM + "/", pull_secrets=("regcred",))
    assert images.manager == f"{TEAM}/traffic-manager:{VERSION}"
    assert images.agent == f"{TEAM}/traffic-agent:{VERSION}"
    assert images.pull_secrets == ("regcred",)
    # a name with a registry of its own wins over --registry
    assert choose_images("other.test/tm:1", registry=TEAM).manager == "other.test/tm:1"


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"manager": "Bad Image"}, ["'Bad Image'", "--manager-image", "[REGISTRY/]NAME[:TAG]"]),
    ({"agent": "x/y:tag with space"}, ["--agent-image"]),
    ({"registry": "https://reg.test"}, ["--registry", "HOST[:PORT][/PATH]"]),
    ({"pull_secrets": ("Reg_Cred",)}, ["'Reg_Cred'", "--image-pull-secret"]),
])
def test_a_bad_image_option_is_one_line_that_names_the_option(
        kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(ConfigError) as bad:
        choose_images(**kwargs)  # type: ignore[arg-type]
    message = str(bad.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_the_connect_grammar_takes_the_image_options() -> None:
    args = build_parser().parse_args([
        "connect", "--registry", TEAM, "--manager-image", "tm:1", "--agent-image", "ta:1",
        "--image-pull-secret", "a", "--image-pull-secret", "b"])
    assert (args.registry, args.manager_image, args.agent_image, args.image_pull_secret) == (
        TEAM, "tm:1", "ta:1", ["a", "b"])


def test_settings_document_the_image_defaults() -> None:
    s = Settings().connect
    assert (s.manager_image, s.agent_image, s.image_registry, s.image_pull_secrets) == (
        "", "", "", [])


def test_a_manager_of_another_version_is_one_line_with_the_fix() -> None:
    assert manager_skew(VERSION, "ambassador") == ""
    assert manager_skew("", "ambassador") == ""
    line = manager_skew("0.0.1", "ambassador")
    assert line.startswith(f"traffic-manager 0.0.1 differs from client {VERSION}: run "
                           "`tp uninstall --everything` and `tp connect`")
    assert "\n" not in line


def test_an_agent_of_another_version_is_one_line_with_the_fix() -> None:
    agent = mpb.AgentInfo(name="web", namespace="team", pod_name="web-1", version="0.0.1")
    line = agent_skew(agent)
    assert line.startswith(f"traffic-agent of pod web-1 0.0.1 differs from traffic-manager "
                           f"{VERSION}: run `tp uninstall --agent web -n team`")
    agent.version = VERSION
    assert agent_skew(agent) == ""
