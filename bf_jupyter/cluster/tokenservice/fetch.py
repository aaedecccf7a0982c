"""``bf-jupyter token-fetch``: the injected init container's side of token-service mode.

Reads the pod's projected service-account token, asks the token service for the Bitfusion token
files over HTTPS (verified against the CA in ``$BF_JUPYTER_TOKEN_SERVICE_CA``, or ``--ca-file``)
and writes them where the client looks: ``tls/ca.crt``, ``client.yaml`` and ``servers.conf`` (the
client rewrites it) under ``--out``. A refusal exits 1 with the service's one line, so the pod
stays in Init with the reason in ``kubectl describe``; unreachable or busy services are retried a
few times first. Standard library only; nothing is printed of either token.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import http.client
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

HELP = "Fetch the Bitfusion token files from the token service (the injected init container)"

CA_ENV = "BF_JUPYTER_TOKEN_SERVICE_CA"
TOKEN_PATH = "/v1/token"
# (file in the answer, path under --out, mode): the same layout as the Secret copy.
_FILES = (
    ("ca.crt", "tls/ca.crt", 0o644),
    ("client.yaml", "client.yaml", 0o644),
    ("servers.conf", "servers.conf", 0o666),
)
_MAX_ANSWER_BYTES = 1 << 20
_RETRYABLE = {429, 500, 502, 503, 504}


class FetchError(RuntimeError):
    """The files could not be had; the message is one line for the pod's events."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        required=True,
        help="the token service, e.g. https://bf-token-service.bf-system.svc",
    )
    parser.add_argument(
        "--service-account-token",
        required=True,
        metavar="FILE",
        help="the pod's projected service-account token for the service's audience",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where to write the files"
    )
    parser.add_argument(
        "--ca-file",
        metavar="FILE",
        help=f"PEM CA of the service's certificate (default: ${CA_ENV})",
    )
    parser.add_argument(
        "--attempts", type=int, default=5, help="tries while the service is unreachable or busy (5)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per try (10)")


def run(args: argparse.Namespace) -> int:
    try:
        context = _tls_context(args.ca_file)
        token = _read_token(Path(args.service_account_token))
        files = fetch(
            args.url, token, context, attempts=max(1, args.attempts), timeout=args.timeout
        )
        write_files(args.out, files)
    except FetchError as error:
        print(f"bf-jupyter token-fetch: {error}", file=sys.stderr)
        return 1
    print(f"bf-jupyter token-fetch: wrote {', '.join(path for _, path, _ in _FILES)} to {args.out}")
    return 0


def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        if ca_file:
            return ssl.create_default_context(cafile=ca_file)
        pem = os.environ.get(CA_ENV, "")
        if not pem.strip():
            raise FetchError(f"no CA for the token service: set ${CA_ENV} or --ca-file")
        return ssl.create_default_context(cadata=pem)
    except (OSError, ssl.SSLError, ValueError) as error:
        raise FetchError(f"the token service's CA is unusable: {error}") from None


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise FetchError(f"cannot read the service-account token {path}: {error}") from None
    if not token:
        raise FetchError(f"the service-account token {path} is empty")
    return token


def fetch(
    url: str, token: str, context: ssl.SSLContext, *, attempts: int = 5, timeout: float = 10.0
) -> dict[str, bytes]:
    """The token files (name -> content) from the service at ``url``. Raises ``FetchError``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchError(
            f"--url {url} is not an https URL: use e.g. https://bf-token-service.bf-system.svc"
        )
    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(2**attempt, 10))
        try:
            status, body = _post(parts, token, context, timeout)
        except (OSError, http.client.HTTPException) as error:
            last = f"the token service at {url} is unreachable ({error})"
            continue
        if status == 200:
            return _files(body)
        reason = _reason(body)
        if status not in _RETRYABLE:
            raise FetchError(f"the token service refused ({status}): {reason}")
        last = f"the token service answered {status}: {reason}"
    raise FetchError(f"{last} (gave up after {attempts} tries)")


def _post(
    parts: urllib.parse.SplitResult, token: str, context: ssl.SSLContext, timeout: float
) -> tuple[int, bytes]:
    assert parts.hostname is not None
    connection = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, context=context, timeout=timeout
    )
    try:
        path = parts.path.rstrip("/") + TOKEN_PATH
        connection.request("POST", path, body=b"", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, response.read(_MAX_ANSWER_BYTES + 1)
    finally:
        connection.close()


def _reason(body: bytes) -> str:
    try:
        reason = json.loads(body).get("error")
    except (ValueError, AttributeError):
        reason = None
    return reason if isinstance(reason, str) and reason else "no reason given"


def _files(body: bytes) -> dict[str, bytes]:
    if len(body) > _MAX_ANSWER_BYTES:
        raise FetchError("the token service's answer is larger than token files can be")
    try:
        files = json.loads(body)["files"]
        decoded = {name: base64.b64decode(files[name], validate=True) for name, _, _ in _FILES}
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise FetchError("the token service's answer is not the token files") from None
    return decoded


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write the files under ``out`` with the client's modes, each atomically. Raises ``FetchError``."""
    try:
        for name, relative, mode in _FILES:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(files[name])
                Path(temporary).chmod(mode)  # the workload may run as any uid
                Path(temporary).replace(target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
    except OSError as error:
        raise FetchError(f"cannot write the token files under {out}: {error}") from None
