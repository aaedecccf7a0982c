"""``bf-jupyter webhook``: serve the mutating and validating admission webhooks over HTTPS.

With a Kubernetes API (in-cluster credentials, or a kubeconfig) validation also checks quota, node
capacity and the token Secret; without one the server runs stand-alone and skips those checks
with a warning. SIGTERM first turns ``/readyz`` to 503 for ``--drain-seconds`` so the Service stops
sending new reviews, then closes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import ssl
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bf_jupyter.cluster.webhook.app import WebhookServer
    from bf_jupyter.cluster.webhook.validate import ClusterFacts

HELP = "Serve the Bitfusion admission webhooks (POST /mutate, /validate) over HTTPS"

log = logging.getLogger("bf_jupyter.webhook")

# One API call may take this long, without retries: the three a validation makes stay inside the
# API server's 5 s webhook timeout.
_API_CALL_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        help="YAML configuration (client table, per-GPU memory, token Secret); "
        "default: the built-in table",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig for the cluster checks (default: in-cluster credentials, "
        "else $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument(
        "--no-cluster-checks",
        action="store_true",
        help="never contact the Kubernetes API (quota, capacity and token checks are skipped)",
    )
    parser.add_argument(
        "--client-ca",
        metavar="FILE",
        help="PEM CA that signed the API server's client certificate: the admission paths then "
        "answer only callers presenting one (the apiserver's AdmissionConfiguration, README)",
    )
    parser.add_argument(
        "--client-name",
        action="append",
        default=[],
        metavar="NAME",
        help="with --client-ca: a subject common name or DNS name the client certificate must "
        "carry (repeatable; default: any certificate the CA signed)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=64,
        help="admission requests in progress at once; more are refused with 429 (64)",
    )
    parser.add_argument(
        "--max-body-mib",
        type=int,
        default=64,
        help="MiB of request bodies held at once; past it requests are refused with 429 (64)",
    )
    parser.add_argument(
        "--max-queued-validations",
        type=int,
        default=64,
        help="validations waiting for a worker thread; more are refused with 429 (64)",
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
    from bf_jupyter.cluster.webhook.app import WebhookServer
    from bf_jupyter.cluster.webhook.config import ConfigError, load_config
    from bf_jupyter.cluster.webhook.metrics import Metrics
    from bf_jupyter.cluster.webhook.routes import Limits
    from bf_jupyter.cluster.webhook.service import AdmissionService

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"bf-jupyter webhook: {error}", file=sys.stderr)
        return 2
    facts = _cluster_facts(args)
    service = AdmissionService(config, facts)
    try:
        server = WebhookServer(
            service,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            port=args.port,
            address=args.address,
            metrics=Metrics(cluster_api=facts.blocking),
            limits=Limits(
                max_requests=args.max_requests,
                max_body_bytes=args.max_body_mib << 20,
                max_queued_validations=args.max_queued_validations,
            ),
            client_ca=args.client_ca,
            client_names=frozenset(args.client_name),
        )
    except (OSError, ssl.SSLError) as error:
        print(
            f"bf-jupyter webhook: cannot load --tls-cert {args.tls_cert} / --tls-key "
            f"{args.tls_key} / --client-ca {args.client_ca}: {error}",
            file=sys.stderr,
        )
        return 2
    log.info("configuration: %s", config.describe())
    try:
        asyncio.run(_serve(server, drain_seconds=args.drain_seconds))
    except OSError as error:
        print(f"bf-jupyter webhook: cannot listen on port {args.port}: {error}", file=sys.stderr)
        return 1
    return 0


def _cluster_facts(args: argparse.Namespace) -> ClusterFacts:
    from bf_jupyter.cluster.webhook.cluster_view import KubeClusterFacts, NoClusterFacts
    from bf_jupyter.kubeapi import KubeApi, KubeUnavailable

    if args.no_cluster_checks:
        return NoClusterFacts("cluster checks are turned off (--no-cluster-checks)")
    try:
        api = KubeApi.connect(
            kubeconfig=args.kubeconfig, request_timeout=_API_CALL_SECONDS, retries=0
        )
    except KubeUnavailable as error:
        log.warning("running stand-alone, quota/capacity/token checks skipped: %s", error)
        return NoClusterFacts(f"the webhook has no Kubernetes API ({error})")
    return KubeClusterFacts(api)


async def _serve(server: WebhookServer, *, drain_seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bound = await server.start()
    # Everything built so far lives as long as the process: keep it out of the garbage collector's
    # scans, which the per-request objects of the admission hot path would otherwise trigger.
    gc.collect()
    gc.freeze()
    log.info(
        "serving admission webhooks on https://:%d (mutate, validate, healthz, metrics)", bound
    )
    try:
        await stop.wait()
        server.draining.set()
        log.info("stopping: not ready for %.1f s, then closing", drain_seconds)
        await asyncio.sleep(drain_seconds)
    finally:
        await server.stop()
