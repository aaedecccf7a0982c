"""``bf-jupyter token-service``: hand the Bitfusion token files to admitted pods over HTTPS."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bf_jupyter.cluster.tokenservice.app import TokenServer

HELP = (
    "Serve the Bitfusion token files to pods the admission webhooks admitted (token-service mode)"
)

DESCRIPTION = f"""{HELP}.

A pod's token-fetch init container (injected by the webhook when tokenSource is service) calls
POST /v1/token with its projected service-account token, bound to the pod and to the audience
tokenService.audience, as "Authorization: Bearer". The service asks the API server for a
TokenReview with that audience, reads the pod the review names and hands out the files of the
token Secret (tokenSecret, in --namespace) only when the pod is that very pod (uid, namespace,
service account), is marked auto-management/status: injected, and runs only wrapped, priced
containers, by the same rule the validating webhook applies. Answers: 200 with the files, 401 when
the caller is not authenticated (no, malformed, expired or wrong-audience token, or one bound to no
pod), 403 when its pod is not entitled, 429 when busy, 503 when the API cannot be asked. Every
refusal is one line; no token is ever logged. It needs to create tokenreviews, get pods, and get
that one Secret (cluster/base/token-service/rbac.yaml).

--config is the webhook's configuration file (the same ConfigMap): the service judges pods with
the webhook's own client table and init containers."""

log = logging.getLogger("bf_jupyter.tokenservice")

_API_CALL_SECONDS = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--port", type=int, default=8443, help="TCP port to listen on (8443)")
    parser.add_argument(
        "--address", default="", help="address to bind (default: all IPv4 addresses)"
    )
    parser.add_argument(
        "--tls-cert", required=True, metavar="FILE", help="PEM serving certificate (chain)"
    )
    parser.add_argument("--tls-key", required=True, metavar="FILE", help="PEM private key")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="the webhook's YAML configuration (tokenSecret, tokenService.audience, client "
        "table); default: the built-in one",
    )
    parser.add_argument(
        "--namespace",
        default=None,
        help="namespace of the token Secret (default: the service's own, else bf-system)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig (default: in-cluster credentials, else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=32,
        help="token requests in progress at once; more are refused with 429 (32)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        help="on SIGTERM, report not-ready this long before closing (5)",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def run(args: argparse.Namespace) -> int:
    from bf_jupyter.cluster.tokenservice.app import Bounds, TokenServer
    from bf_jupyter.cluster.tokenservice.authority import KubeTokenAuthority
    from bf_jupyter.cluster.tokenservice.issuer import TokenIssuer
    from bf_jupyter.cluster.webhook.config import ConfigError, TokenSource, load_config
    from bf_jupyter.kubeapi import KubeApi, KubeUnavailable

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.max_requests < 1:
        print(
            f"bf-jupyter token-service: --max-requests {args.max_requests} is below 1: use e.g. 32",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"bf-jupyter token-service: {error}", file=sys.stderr)
        return 2
    if config.token_source is not TokenSource.SERVICE:
        log.warning(
            "tokenSource is %s: the webhook injects no token fetch, nobody will call",
            config.token_source.value,
        )
    try:
        api = KubeApi.connect(
            kubeconfig=args.kubeconfig, request_timeout=_API_CALL_SECONDS, retries=0
        )
    except KubeUnavailable as error:
        print(f"bf-jupyter token-service: {error}", file=sys.stderr)
        return 2
    namespace = args.namespace or KubeApi.default_namespace(kubeconfig=args.kubeconfig)
    authority = KubeTokenAuthority(api, namespace=namespace, secret=config.token_secret)
    try:
        server = TokenServer(
            TokenIssuer(config, authority),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            port=args.port,
            address=args.address,
            bounds=Bounds(max_requests=args.max_requests),
        )
    except (OSError, ssl.SSLError) as error:
        print(
            f"bf-jupyter token-service: cannot load --tls-cert {args.tls_cert} / --tls-key "
            f"{args.tls_key}: {error}",
            file=sys.stderr,
        )
        return 2
    log.info(
        "handing out Secret %s/%s to admitted pods (audience %s)",
        namespace,
        config.token_secret,
        config.token_audience,
    )
    try:
        asyncio.run(_serve(server, drain_seconds=args.drain_seconds))
    except OSError as error:
        print(
            f"bf-jupyter token-service: cannot listen on port {args.port}: {error}", file=sys.stderr
        )
        return 1
    finally:
        api.close()
    return 0


async def _serve(server: TokenServer, *, drain_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = await server.start()
    log.info("serving the token service on https://:%d (/v1/token, healthz, readyz)", bound)
    try:
        await stop.wait()
        server.draining.set()
        await asyncio.sleep(drain_seconds)
    finally:
        await server.stop()
