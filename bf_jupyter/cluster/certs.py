"""``bf-jupyter certs``: a CA, serving certificates for the webhook and the token service, plus the
kustomize patch that gives both webhook configurations the CA bundle.

The API server calls the webhook at ``https://<service>.<namespace>.svc``, so the serving certificate
names the Service's DNS forms (extra names or IPs with ``--extra-san``). An existing CA in the output
folder is reused (re-running rotates the serving certificate without changing the CA bundle) unless
``--new-ca``. Private keys are written 0600, every file atomically: a failure leaves no partial file.
For automatic rotation use the cert-manager overlay instead (``cluster/overlays/cert-manager``).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

HELP = "Write a CA, the webhook's serving certificate and the caBundle kustomize patch"

# Names the manifests in cluster/ use (a test keeps them equal).
NAMESPACE = "bf-system"
SERVICE = "bf-webhook"
TLS_SECRET = "bf-webhook-tls"
TOKEN_SERVICE = "bf-token-service"
TOKEN_SERVICE_TLS_SECRET = "bf-token-service-tls"
# The token service's serving certificate and key, beside the webhook's tls.crt and tls.key.
TOKEN_SERVICE_FILES = ("token-service.crt", "token-service.key")
MUTATING_CONFIGURATION = "bf-jupyter-mutate"
MUTATING_WEBHOOK = "mutate.bf-jupyter.bitfusion.io"
VALIDATING_CONFIGURATION = "bf-jupyter-validate"
VALIDATING_WEBHOOK = "validate.bf-jupyter.bitfusion.io"
PATCH_FILE = "ca-bundle-patch.yaml"

_CA_DAYS = 3650
_CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateSet:
    """PEM bytes of the CA and of the serving certificate and their keys."""

    ca_cert: bytes
    ca_key: bytes
    server_cert: bytes
    server_key: bytes


def service_names(service: str, namespace: str) -> list[str]:
    """The DNS names a Service answers to inside the cluster."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def issue(
    *,
    service: str,
    namespace: str,
    days: int = 365,
    extra_sans: tuple[str, ...] = (),
    ca: tuple[bytes, bytes] | None = None,
) -> CertificateSet:
    """Issue a serving certificate for the Service, signed by ``ca`` (PEM cert, PEM key) or by a new CA.

    Raises ``ValueError`` for an unusable CA or SAN.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    if ca is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bf-jupyter webhook CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + datetime.timedelta(days=_CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
    else:
        ca_cert = x509.load_pem_x509_certificate(ca[0])
        loaded = serialization.load_pem_private_key(ca[1], password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(
                "the CA key is not an EC key written by bf-jupyter certs: use --new-ca"
            )
        ca_key = loaded
    key = ec.generate_private_key(ec.SECP256R1())
    names = service_names(service, namespace)
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    sans += [_general_name(text) for text in extra_sans]
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[2])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    private = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    return CertificateSet(
        ca_cert=ca_cert.public_bytes(pem),
        ca_key=ca_key.private_bytes(pem, private, plain),
        server_cert=cert.public_bytes(pem),
        server_key=key.private_bytes(pem, private, plain),
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    from cryptography.x509 import KeyUsage

    return KeyUsage(
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


def _general_name(text: str) -> x509.GeneralName:
    from cryptography.x509 import DNSName, IPAddress

    try:
        return IPAddress(ipaddress.ip_address(text))
    except ValueError:
        if not text or any(ch.isspace() or ch == "/" for ch in text):
            raise ValueError(f"--extra-san {text!r} is not a DNS name or an IP address") from None
        return DNSName(text)


def ca_bundle_patch(ca_cert: bytes) -> str:
    """The kustomize patch (strategic merge) that sets ``caBundle`` in both webhook configurations."""
    bundle = base64.b64encode(ca_cert).decode("ascii")
    header = (
        "# Written by `bf-jupyter certs`: the CA that signed the webhook's serving certificate.\n"
    )
    documents = [
        f"apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {config}\n"
        f"webhooks:\n  - name: {webhook}\n    clientConfig:\n      caBundle: {bundle}\n"
        for kind, config, webhook in (
            ("MutatingWebhookConfiguration", MUTATING_CONFIGURATION, MUTATING_WEBHOOK),
            ("ValidatingWebhookConfiguration", VALIDATING_CONFIGURATION, VALIDATING_WEBHOOK),
        )
    ]
    return header + "---\n".join(documents)


def write_files(
    out: Path, certs: CertificateSet, token_service: CertificateSet | None = None
) -> list[Path]:
    """Write ca.crt, ca.key, tls.crt, tls.key (keys 0600) and the patch into ``out``, and the token
    service's certificate and key (``TOKEN_SERVICE_FILES``) when given."""
    out.mkdir(parents=True, exist_ok=True)
    files = [
        ("ca.crt", certs.ca_cert, 0o644),
        ("ca.key", certs.ca_key, 0o600),
        ("tls.crt", certs.server_cert, 0o644),
        ("tls.key", certs.server_key, 0o600),
        (PATCH_FILE, ca_bundle_patch(certs.ca_cert).encode(), 0o644),
    ]
    if token_service is not None:
        cert_name, key_name = TOKEN_SERVICE_FILES
        files += [
            (cert_name, token_service.server_cert, 0o644),
            (key_name, token_service.server_key, 0o600),
        ]
    written = []
    for name, data, mode in files:
        _write_atomically(out / name, data, mode)
        written.append(out / name)
    return written


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # mkstemp creates the file 0600; the final mode is set before the rename makes it visible.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        Path(temporary).chmod(mode)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ----- the command -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace", default=NAMESPACE, help=f"the webhook's namespace ({NAMESPACE})"
    )
    parser.add_argument("--service", default=SERVICE, help=f"the webhook's Service ({SERVICE})")
    parser.add_argument(
        "--token-service",
        default=TOKEN_SERVICE,
        help=f"the token service's Service ({TOKEN_SERVICE}); its certificate is "
        f"{TOKEN_SERVICE_FILES[0]} and {TOKEN_SERVICE_FILES[1]}, signed by the same CA",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write into, e.g. cluster/certs",
    )
    parser.add_argument("--days", type=int, default=365, help="serving certificate lifetime (365)")
    parser.add_argument(
        "--extra-san",
        action="append",
        default=[],
        metavar="NAME_OR_IP",
        help="another DNS name or IP for the serving certificate (repeatable)",
    )
    parser.add_argument("--new-ca", action="store_true", help="make a new CA even if DIR holds one")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.days <= _CA_DAYS:
        print(
            f"bf-jupyter certs: --days {args.days} is out of range: use 1–{_CA_DAYS}",
            file=sys.stderr,
        )
        return 2
    out: Path = args.out
    existing = None
    if not args.new_ca and (out / "ca.crt").is_file() and (out / "ca.key").is_file():
        existing = ((out / "ca.crt").read_bytes(), (out / "ca.key").read_bytes())
    try:
        certs = issue(
            service=args.service,
            namespace=args.namespace,
            days=args.days,
            extra_sans=tuple(args.extra_san),
            ca=existing,
        )
        token_service = issue(
            service=args.token_service,
            namespace=args.namespace,
            days=args.days,
            ca=(certs.ca_cert, certs.ca_key),
        )
        write_files(out, certs, token_service)
    except (ValueError, OSError) as error:
        print(f"bf-jupyter certs: {error}", file=sys.stderr)
        return 1
    reused = "reused the CA in" if existing else "wrote a new CA to"
    print(
        f"{reused} {out}; serving certificate for {service_names(args.service, args.namespace)[2]}\n"
        "next:\n"
        f"  kubectl create namespace {args.namespace}\n"
        f"  kubectl -n {args.namespace} create secret tls {TLS_SECRET} "
        f"--cert={out / 'tls.crt'} --key={out / 'tls.key'} --dry-run=client -o yaml | kubectl apply -f -\n"
        f"  kubectl -n {args.namespace} create secret generic {TOKEN_SERVICE_TLS_SECRET} "
        f"--type=kubernetes.io/tls --from-file=tls.crt={out / TOKEN_SERVICE_FILES[0]} "
        f"--from-file=tls.key={out / TOKEN_SERVICE_FILES[1]} --from-file=ca.crt={out / 'ca.crt'} "
        "--dry-run=client -o yaml | kubectl apply -f -\n"
        f"  ({out / PATCH_FILE} gives the webhook configurations the CA bundle; "
        "keep ca.key private)"
    )
    return 0
