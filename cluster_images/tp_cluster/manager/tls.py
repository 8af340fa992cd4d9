"""The manager's TLS identity for direct connect.

Direct connect carries every caller's Kubernetes token across a network the API server
does not protect, so the manager's direct listener speaks TLS only. Its certificate is
self-signed and kept in the Secret `manifests.TLS_SECRET` (made once, by the first
manager pod that finds none, so every later pod presents the same one); the certificate
alone is published in the ConfigMap `manifests.CA_CONFIGMAP`. A daemon reads that
ConfigMap through the API server, which it already trusts, and accepts no other
certificate at the LoadBalancer address: a man in the middle there never sees a token.
"""

from __future__ import annotations

import base64
import datetime
import logging
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tp_cluster.errors import ClusterError
from tp_cluster.kube import Kube, KubeConflict
from tp_cluster.manifests import CA_CONFIGMAP, LABELS, MANAGED_BY, NAME, TLS_SECRET

log = logging.getLogger(__name__)

CA_KEY = "ca.crt"
NAME_KEY = "server-name"


@dataclass(frozen=True)
class Identity:
    """PEM certificate and key, and the DNS name the certificate is made for."""

    cert: bytes
    key: bytes
    server_name: str


def server_name(namespace: str) -> str:
    """The name in the certificate (clients override the target name with it)."""
    return f"{NAME}.{namespace}.svc"


def make_identity(namespace: str, days: int) -> Identity:
    """A new self-signed certificate (ECDSA P-256) for `server_name(namespace)`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = server_name(namespace)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(name), x509.DNSName(f"{name}.cluster.local")]), critical=False)
            # it is its own CA: the daemon pins exactly this certificate as the root
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return Identity(cert.public_bytes(serialization.Encoding.PEM),
                    key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
                    name)


def _meta(name: str, namespace: str) -> dict[str, object]:
    return {"name": name, "namespace": namespace, "labels": {**LABELS, **MANAGED_BY}}


def ensure_identity(kube: Kube, namespace: str, days: int) -> Identity:
    """The Secret's identity (made and stored when absent), published in the ConfigMap.

    Blocking (the official client): call it with `asyncio.to_thread`."""
    identity = _read(kube, namespace)
    if identity is None:
        made = make_identity(namespace, days)
        try:
            kube.create_secret(namespace, {
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": _meta(TLS_SECRET, namespace),
                "data": {"tls.crt": base64.b64encode(made.cert).decode(),
                         "tls.key": base64.b64encode(made.key).decode()}})
            identity = made
            log.info("made the direct-connect certificate (Secret %s)", TLS_SECRET)
        except KubeConflict:  # another manager pod stored one first: use that one
            identity = _read(kube, namespace)
            if identity is None:
                raise
    _publish(kube, namespace, identity)
    return identity


def _read(kube: Kube, namespace: str) -> Identity | None:
    secret = kube.read_secret(namespace, TLS_SECRET)
    if secret is None:
        return None
    data = secret.get("data") or {}
    return Identity(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]),
                    server_name(namespace))


def _publish(kube: Kube, namespace: str, identity: Identity) -> None:
    wanted = {CA_KEY: identity.cert.decode(), NAME_KEY: identity.server_name}
    current = kube.read_configmap(namespace, CA_CONFIGMAP)
    if current is not None and current.get("data") == wanted:
        return
    body: dict[str, object] = {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": _meta(CA_CONFIGMAP, namespace), "data": wanted}
    if current is not None:
        body["metadata"] = {**_meta(CA_CONFIGMAP, namespace),
                            "resourceVersion": current["metadata"]["resourceVersion"]}
    kube.write_configmap(namespace, body, create=current is None)


def add_direct_port(server: grpc.aio.Server, listen: str, identity: Identity) -> int:
    """The TLS listener on `server` (its interceptors authenticate every call there too)."""
    try:
        port: int = server.add_secure_port(listen, grpc.ssl_server_credentials(
            [(identity.key, identity.cert)]))
    except RuntimeError as exc:
        raise CannotServeDirect(f"cannot listen on {listen} for direct connect: {exc}"
                                ) from exc
    return port


class CannotServeDirect(ClusterError):
    """The direct listener cannot open (the manager serves the port-forward path anyway)."""
