"""Runs the controllers over shared informers; stops them in order (workers first,
then the watches that feed them)."""

from __future__ import annotations

import logging

from tp_protocol.settings import ControllerSettings

from .base import Context, Controller
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .endpoints import EndpointsController, EndpointSliceController
from .gc import GarbageCollector
from .job import JobController
from .kube import Kube
from .loadbalancer import LoadBalancerController
from .machinery import Informers
from .namespace import NamespaceController
from .replicaset import ReplicaSetController
from .scheduler import Scheduler
from .statefulset import StatefulSetController
from .volumes import VolumeBinder

log = logging.getLogger(__name__)

CONTROLLERS: dict[str, type[Controller]] = {
    "deployment": DeploymentController,
    "replicaset": ReplicaSetController,
    "statefulset": StatefulSetController,
    "daemonset": DaemonSetController,
    "job": JobController,
    "cronjob": CronJobController,
    "persistentvolume-binder": VolumeBinder,
    "scheduler": Scheduler,
    "endpoints": EndpointsController,
    "endpointslice": EndpointSliceController,
    "service-lb-controller": LoadBalancerController,
    "garbagecollector": GarbageCollector,
    "namespace": NamespaceController,
}


def select(spec: str) -> list[str]:
    """kube-controller-manager style `--controllers`: `*`, names, `-name` to drop."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "*":
            names += [n for n in CONTROLLERS if n not in names]
        elif part.startswith("-"):
            if part[1:] not in CONTROLLERS:
                raise ValueError(f"unknown controller {part[1:]!r}: choose from "
                                 f"{', '.join(CONTROLLERS)}")
            names = [n for n in names if n != part[1:]]
        elif part in CONTROLLERS:
            if part not in names:
                names.append(part)
        else:
            raise ValueError(f"unknown controller {part!r}: choose from {', '.join(CONTROLLERS)}")
    return names


class Manager:
    def __init__(self, kube: Kube, settings: ControllerSettings,
                 names: list[str] | None = None) -> None:
        self.kube, self.settings = kube, settings
        self.informers = Informers(kube, settings)
        ctx = Context(kube, self.informers, settings)
        self.controllers = [CONTROLLERS[n](ctx) for n in (names or list(CONTROLLERS))]

    def start(self) -> None:
        for inf in self.informers.all():
            inf.start()
        for c in self.controllers:
            c.start()
        log.info("started %s", ", ".join(c.name for c in self.controllers))

    def stop(self) -> None:
        timeout = self.settings.stop_timeout
        for c in self.controllers:
            c.stop()
        for c in self.controllers:
            c.join(timeout)
        for inf in self.informers.all():
            inf.stop()
        for inf in self.informers.all():
            inf.join(timeout)
        self.kube.close()
        log.info("stopped")
