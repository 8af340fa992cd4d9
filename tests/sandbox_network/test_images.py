"""The sandbox image catalog."""

from __future__ import annotations

import sys

from tp_sandbox import images


def test_our_images_match_without_registry_and_tag() -> None:
    assert images.resolve("ghcr.io/tp-jupyter/traffic-manager:0.1.0") == [
        sys.executable, "-m", "tp_cluster.manager"]
    assert images.resolve("traffic-agent") == [sys.executable, "-m", "tp_cluster.agent"]


def test_demo_images_run_the_demo_modules() -> None:
    argv = images.resolve("ghcr.io/tp-jupyter/demo-dataprocessingservice:0.1.0")
    assert argv == [sys.executable, "-m", "tp_sandbox.demo.dataprocessingservice"]


def test_generic_images_run_host_tools() -> None:
    assert images.resolve("busybox") == ["sh"]
    assert images.resolve("docker.io/library/alpine:3.20") == ["sh"]
    assert images.resolve("localhost:5000/ubuntu:24.04") == ["sh"]
    assert images.resolve("python:3.11-slim") == [sys.executable]
    assert images.resolve("python@sha256:" + "0" * 64) == [sys.executable]


def test_unknown_images_are_not_known() -> None:
    assert images.resolve("ghcr.io/someone/webshop:1.0") is None
    assert not images.known("example.com/team/web:latest")
    assert images.known("DEBIAN:12")


def test_the_catalog_lists_every_image_once() -> None:
    names = [entry.name for entry in images.CATALOG]
    assert len(names) == len(set(names))
    assert {"traffic-manager", "traffic-agent", "demo-verylargejavaservice"} <= set(names)
