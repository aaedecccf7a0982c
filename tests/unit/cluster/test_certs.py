"""``bf-jupyter certs``: a CA, a serving certificate for the Service's DNS names, private keys 0600,
and the caBundle patch; re-running keeps the CA."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bf_jupyter.cli import main
from bf_jupyter.cluster import certs

if TYPE_CHECKING:
    import pytest


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certs_writes_a_ca_a_serving_certificate_and_the_patch(tmp_path: Path) -> None:
    # when the command runs for the shipped Service
    assert main(["certs", "--namespace", "bf-system", "--service", "bf-webhook", "--out", str(tmp_path),
                 "--extra-san", "127.0.0.1"]) == 0  # fmt: skip
    # then private keys are readable by their owner only, certificates by all
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"ca.crt": 0o644, "ca.key": 0o600, "tls.crt": 0o644, "tls.key": 0o600,
                     "ca-bundle-patch.yaml": 0o644, "token-service.crt": 0o644,
                     "token-service.key": 0o600}  # fmt: skip
    # and the serving certificate names the Service as the API server calls it, signed by the CA
    ca, server = load(tmp_path / "ca.crt"), load(tmp_path / "tls.crt")
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "bf-webhook", "bf-webhook.bf-system", "bf-webhook.bf-system.svc",
        "bf-webhook.bf-system.svc.cluster.local",
    ]  # fmt: skip
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # and the patch gives both webhook configurations that CA
    documents = list(yaml.safe_load_all((tmp_path / "ca-bundle-patch.yaml").read_text()))
    assert [d["metadata"]["name"] for d in documents] == [
        "bf-jupyter-mutate",
        "bf-jupyter-validate",
    ]
    for document in documents:
        bundle = document["webhooks"][0]["clientConfig"]["caBundle"]
        assert base64.b64decode(bundle) == (tmp_path / "ca.crt").read_bytes()


def test_certs_also_writes_the_token_services_certificate_from_the_same_ca(
    tmp_path: Path,
) -> None:
    assert main(["certs", "--out", str(tmp_path)]) == 0
    ca, served = load(tmp_path / "ca.crt"), load(tmp_path / "token-service.crt")
    served.verify_directly_issued_by(ca)
    sans = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "bf-token-service.bf-system.svc" in sans.get_values_for_type(x509.DNSName)
    assert "bf-webhook.bf-system.svc" not in sans.get_values_for_type(x509.DNSName)


def test_running_certs_again_keeps_the_ca_unless_asked(tmp_path: Path) -> None:
    main(["certs", "--out", str(tmp_path)])
    first_ca, first_server = (tmp_path / "ca.crt").read_bytes(), (tmp_path / "tls.crt").read_bytes()
    main(["certs", "--out", str(tmp_path)])
    assert (tmp_path / "ca.crt").read_bytes() == first_ca
    assert (tmp_path / "tls.crt").read_bytes() != first_server
    load(tmp_path / "tls.crt").verify_directly_issued_by(load(tmp_path / "ca.crt"))
    main(["certs", "--out", str(tmp_path), "--new-ca"])
    assert (tmp_path / "ca.crt").read_bytes() != first_ca


def test_certs_refuses_a_bad_san_and_leaves_no_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "--out", str(tmp_path / "out"), "--extra-san", "bad name"]) == 1
    assert "--extra-san 'bad name' is not a DNS name or an IP address" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_certs_refuses_a_lifetime_out_of_range(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["certs", "--out", str(tmp_path), "--days", "0"]) == 2
    assert "--days 0 is out of range" in capsys.readouterr().err


def test_the_serving_key_is_a_p256_key() -> None:
    issued = certs.issue(service="s", namespace="n")
    cert = x509.load_pem_x509_certificate(issued.server_cert)
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
