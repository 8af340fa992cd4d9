"""The sandbox's certificate authority and serving certificate.

A fresh CA per instance; the API server's certificate names every address a client
may use: the host loopback, the in-sandbox API address, the `kubernetes` Service IP
and its DNS names.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_VALIDITY = datetime.timedelta(days=365)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def ensure_pki(pki_dir: Path, ip_sans: list[str], dns_sans: list[str]) -> None:
    """Create ca.crt/ca.key and apiserver.crt/apiserver.key in `pki_dir` if missing."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_crt, ca_key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    srv_crt, srv_key_path = pki_dir / "apiserver.crt", pki_dir / "apiserver.key"
    if ca_crt.exists() and srv_crt.exists() and srv_key_path.exists():
        return
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tp-sandbox-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = _key()
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_sans]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_sans]
    srv_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(ca_key, ca_key_path)
    ca_crt.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(srv_key, srv_key_path)
    srv_crt.write_bytes(srv_cert.public_bytes(serialization.Encoding.PEM))


def default_sans(api_address: str, kubernetes_service_ip: str, domain: str) -> tuple[
    list[str], list[str]
]:
    """(IP SANs, DNS SANs) that every sandbox API server certificate carries."""
    ips = ["127.0.0.1", api_address, kubernetes_service_ip]
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
    ]
    return ips, dns
