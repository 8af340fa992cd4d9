"""Direct connect: the traffic-manager at its LoadBalancer address, past the API server.

`tp connect --manager-address auto|direct|port-forward|HOST:PORT` (default
`Settings.connect.manager_address`) picks how the daemon reaches the manager. Direct
connect needs the Service `traffic-manager-direct` (an admin's opt-in: `tp connect
--manager-service-type LoadBalancer` at install) with an ingress address. The channel
there is TLS whose only accepted root is the certificate the manager published in the
ConfigMap `traffic-manager-ca`, read through the API server the daemon already trusts:
a man in the middle of the LoadBalancer address cannot complete the handshake, so it
never sees the bearer token every call carries (the same token, reviewed with
TokenReview, as on the port-forward path). Everything the daemon does with the manager
(tunnels, dials, DNS, intercept streams) uses this one channel, so the API server is out
of the data path.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import empty_pb2
from tp_cluster import manifests
from tp_protocol import manager_pb2_grpc as mgrpc
from tp_protocol.auth import with_credentials

from tp_daemon.errors import ConfigError, DaemonError
from tp_daemon.kube import DirectTarget, Kube

log = logging.getLogger(__name__)

AUTO, DIRECT, PORT_FORWARD = "auto", "direct", "port-forward"
MODES = (AUTO, DIRECT, PORT_FORWARD)
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 16 * 1024 * 1024),
                   ("grpc.enable_retries", 0)]


@dataclass(frozen=True)
class Choice:
    """What the user asked for: a mode, and for HOST:PORT the address."""

    mode: str
    address: str = ""


def parse(value: str) -> Choice:
    """`--manager-address` as given; a bad value is a one-line ConfigError."""
    value = value.strip() or AUTO
    if value in MODES:
        return Choice(value)
    match = _HOST_PORT.fullmatch(value)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ConfigError(f"--manager-address {value!r} is not auto, direct, port-forward "
                          "or HOST:PORT; pass one of those")
    return Choice(DIRECT, value)


def service_type(value: str) -> str:
    """`--manager-service-type`, checked before anything is installed."""
    if value not in manifests.SERVICE_TYPES:
        raise ConfigError(f"--manager-service-type {value!r} is not one of "
                          f"{', '.join(manifests.SERVICE_TYPES)}; pass one of those")
    return value


@dataclass
class Direct:
    """A working TLS channel to the manager's direct address."""

    channel: grpc.aio.Channel
    address: str
    target: DirectTarget | None = None   # the pinned certificate, for raw dials too


class Unavailable(DaemonError):
    """Direct connect is not possible; `silent` when nothing was set up for it (no
    LoadBalancer Service), so `auto` says nothing about it."""

    def __init__(self, reason: str, *, silent: bool = False) -> None:
        super().__init__(reason)
        self.silent = silent


async def lookup(kube: Kube, namespace: str, choice: Choice) -> DirectTarget | Unavailable:
    """Where to reach the manager directly (read through the API server), or why not.

    `tp connect` runs this beside its look for the manager pod: one round trip, not two."""
    try:
        if choice.address:
            found = await asyncio.to_thread(kube.manager_certificate, namespace)
            if isinstance(found, str):
                return Unavailable(found)
            return DirectTarget(choice.address, *found)
        if choice.mode == DIRECT:  # both reads are needed: side by side, one round trip
            got = _target(*await asyncio.gather(
                asyncio.to_thread(kube.direct_address, namespace),
                asyncio.to_thread(kube.manager_certificate, namespace),
                return_exceptions=True))
        else:  # auto: the certificate is read only once a LoadBalancer is there
            got = await asyncio.to_thread(kube.direct_target, namespace)
    except DaemonError as e:  # e.g. no right to read the Service: the port-forward then
        return Unavailable(str(e))
    if isinstance(got, str):
        return Unavailable(got, silent="no LoadBalancer Service" in got)
    return got


def _target(address: tuple[str] | str | BaseException,
            ca: tuple[bytes, str] | str | BaseException) -> DirectTarget | str:
    """`Kube.direct_target` from its two reads made side by side (the Service's first)."""
    for found in (address, ca):
        if isinstance(found, BaseException):
            raise found
        if isinstance(found, str):
            return found
    assert isinstance(address, tuple) and isinstance(ca, tuple)
    return DirectTarget(address[0], *ca)


async def open_channel(target: DirectTarget | Unavailable, token: Callable[[], str],
                       answer_within: float) -> Direct:
    """A channel whose `Version` answered within `answer_within` s, or Unavailable(reason)."""
    if isinstance(target, Unavailable):
        raise target
    credentials = grpc.ssl_channel_credentials(root_certificates=target.certificate)
    channel = grpc.aio.secure_channel(target.address, credentials, options=[
        *CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", target.server_name)])
    stub = with_credentials(mgrpc.ManagerStub(channel), token)
    try:
        await stub.Version(empty_pb2.Empty(), timeout=answer_within)
    except grpc.aio.AioRpcError as e:
        await channel.close(grace=None)
        raise Unavailable(f"{target.address} does not answer ({reason(e, answer_within)})"
                          ) from e
    except BaseException:
        await channel.close(grace=None)
        raise
    return Direct(channel, target.address, target)


def reason(e: grpc.aio.AioRpcError, timeout: float) -> str:
    """A short why, instead of gRPC's nested connection report."""
    details = e.details() or ""
    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within {timeout:g} s"
    low = details.lower()
    for needle, said in (("network is unreachable", "network is unreachable"),
                         ("no route to host", "no route to host"),
                         ("connection refused", "connection refused"),
                         ("handshake", "TLS handshake failed: not the certificate the "
                                       "cluster published"),
                         ("ssl", "TLS failed: not the certificate the cluster published"),
                         ("certificate", "TLS failed: not the certificate the cluster "
                                         "published")):
        if needle in low:
            return said
    return f"{e.code().name}: {details.splitlines()[0] if details else ''}".rstrip(": ")
