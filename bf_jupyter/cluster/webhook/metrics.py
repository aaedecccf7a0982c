"""The webhook's Prometheus metrics, rendered as text exposition format 0.0.4.

One ``Metrics`` object belongs to one server and is only touched from its event-loop thread (the
admission service returns what happened; the handler records it), so it needs no lock. Written by
hand: three counters and a histogram do not justify a client library in the image.
"""

from __future__ import annotations

import bisect
from collections import Counter

__all__ = ["LATENCY_BUCKETS", "Metrics"]

# Seconds; the API server allows the webhook 5 s (timeoutSeconds), most answers take well under 1 ms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Counters and a latency histogram per endpoint."""

    def __init__(self, *, cluster_api: bool = False) -> None:
        self.cluster_api = cluster_api
        self._requests: Counter[tuple[str, str]] = Counter()
        self._skipped: Counter[str] = Counter()
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def record(
        self, endpoint: str, outcome: str, seconds: float, skipped: tuple[str, ...] = ()
    ) -> None:
        """Count one answered request and observe how long it took."""
        self._requests[endpoint, outcome] += 1
        for check in skipped:
            self._skipped[check] += 1
        buckets = self._buckets.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS) + 1))
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[endpoint] = self._sums.get(endpoint, 0.0) + seconds

    def count(self, endpoint: str, outcome: str) -> int:
        return self._requests[endpoint, outcome]

    def render(self) -> str:
        """The exposition text."""
        lines = [
            "# HELP bf_webhook_requests_total Admission requests answered, by endpoint and outcome.",
            "# TYPE bf_webhook_requests_total counter",
        ]
        lines += [
            f'bf_webhook_requests_total{{endpoint="{e}",outcome="{o}"}} {n}'
            for (e, o), n in sorted(self._requests.items())
        ]
        lines += [
            "# HELP bf_webhook_denials_total Admission requests denied, by endpoint.",
            "# TYPE bf_webhook_denials_total counter",
        ]
        endpoints = sorted({e for e, _ in self._requests} | {"mutate", "validate"})
        lines += [
            f'bf_webhook_denials_total{{endpoint="{e}"}} {self._requests[e, "denied"]}'
            for e in endpoints
        ]
        lines += [
            "# HELP bf_webhook_cluster_checks_skipped_total Cluster checks skipped because the API was unavailable.",
            "# TYPE bf_webhook_cluster_checks_skipped_total counter",
        ]
        lines += [
            f'bf_webhook_cluster_checks_skipped_total{{check="{c}"}} {n}'
            for c, n in sorted(self._skipped.items())
        ]
        lines += [
            "# HELP bf_webhook_cluster_api_configured Whether a Kubernetes API is configured (1) or the webhook runs stand-alone (0).",
            "# TYPE bf_webhook_cluster_api_configured gauge",
            f"bf_webhook_cluster_api_configured {int(self.cluster_api)}",
            "# HELP bf_webhook_request_duration_seconds Time to answer an admission request.",
            "# TYPE bf_webhook_request_duration_seconds histogram",
        ]
        for endpoint, buckets in sorted(self._buckets.items()):
            running = 0
            for bound, count in zip((*LATENCY_BUCKETS, "+Inf"), buckets, strict=True):
                running += count
                lines.append(
                    f'bf_webhook_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {running}'
                )
            lines.append(
                f'bf_webhook_request_duration_seconds_sum{{endpoint="{endpoint}"}} {self._sums[endpoint]:.6f}'
            )
            lines.append(
                f'bf_webhook_request_duration_seconds_count{{endpoint="{endpoint}"}} {running}'
            )
        return "\n".join(lines) + "\n"
