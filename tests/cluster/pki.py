"""The test cluster's certificate authority: one CA that signs the serving certificates (apiserver,
scheduler, controller manager, kubelets, webhooks) and the client certificates that carry
Kubernetes identities (``CN`` is the user, ``O`` the groups: ``system:masters``,
``system:node:<name>`` in ``system:nodes``, ``system:kube-scheduler``, …), and the kubeconfigs
that carry them.

``bf_jupyter.cluster.certs`` issues the webhook Service's serving certificate, which is all the
product needs; client identities and certificates for arbitrary hosts are a test-cluster concern, so
they live here. The DNS names of a Service come from ``certs.service_names`` in both.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LIFETIME = datetime.timedelta(days=2)
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


class CertificateAuthority:
    """A CA (EC P-256, valid two days) that issues serving and client certificates."""

    def __init__(self, common_name: str = "bf-jupyter test cluster CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _private_pem(self._key)

    def issue_serving(self, hosts: Sequence[str]) -> KeyPair:
        """A serving certificate for ``hosts`` (DNS names and IP addresses).

        Raises ``ValueError`` when ``hosts`` is empty or holds something that is neither.
        """
        if not hosts:
            raise ValueError("a serving certificate needs at least one host name or IP address")
        names = [_general_name(host) for host in hosts]
        return self._issue(
            subject=[x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])],
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            sans=names,
        )

    def issue_client(self, user: str, groups: Sequence[str] = ()) -> KeyPair:
        """A client certificate that the apiserver reads as ``user`` in ``groups``."""
        if not user:
            raise ValueError("a client certificate needs a user name (its CN)")
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, user))
        return self._issue(subject=subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH, sans=[])

    def _issue(
        self,
        *,
        subject: list[x509.NameAttribute[str]],
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName],
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(self._cert.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _private_pem(key))


def new_signing_key() -> tuple[bytes, bytes]:
    """A bare EC key pair (public PEM, private PEM), e.g. the service-account token signing key."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public, _private_pem(key)


def kubeconfig_text(server: str, ca_pem: bytes, user: str, client: KeyPair) -> str:
    """A kubeconfig (JSON, which kubectl and client libraries read as YAML) for ``client`` at
    ``server``, with the CA and the client certificate embedded."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
        "current-context": user,
    }
    return json.dumps(config, indent=2)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        if not host or any(ch.isspace() or ch == "/" for ch in host):
            raise ValueError(f"host {host!r} is not a DNS name or an IP address") from None
        return x509.DNSName(host)
