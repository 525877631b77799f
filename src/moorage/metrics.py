"""SageMaker's endpoint metrics (spec/LIMITS.md §7), as Prometheus series.

Names and dimensions are SageMaker's own (``Invocations{EndpointName, VariantName}``), so
dashboards and alarms written for CloudWatch translate one to one. Latencies are histograms in
microseconds, SageMaker's unit. The invocation path holds per-variant children, resolved once
when a route is built, so recording costs a few attribute lookups.
"""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_DIMENSIONS = ("EndpointName", "VariantName")
# Microseconds, from 100 µs to 60 s.
_LATENCY_BUCKETS = (
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
)  # fmt: skip


class EndpointMetrics:
    """The registry behind ``/metrics``; one per server."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invocations = Counter(
            "Invocations", "InvokeEndpoint requests sent to the model", _DIMENSIONS, registry=r
        )
        self.invocations_per_instance = Counter(
            "InvocationsPerInstance",
            "Invocations divided by the variant's instance count",
            _DIMENSIONS,
            registry=r,
        )
        self.errors_4xx = Counter(
            "Invocation4XXErrors", "Requests answered with a 4xx status", _DIMENSIONS, registry=r
        )
        self.errors_5xx = Counter(
            "Invocation5XXErrors", "Requests answered with a 5xx status", _DIMENSIONS, registry=r
        )
        self.model_errors = Counter(
            "InvocationModelErrors",
            "Model calls that did not answer 2xx (errors, timeouts, broken connections)",
            _DIMENSIONS,
            registry=r,
        )
        self.model_latency = Histogram(
            "ModelLatency",
            "Microseconds waited on the model container",
            _DIMENSIONS,
            unit="microseconds",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead_latency = Histogram(
            "OverheadLatency",
            "Microseconds of the request not spent in the model container",
            _DIMENSIONS,
            unit="microseconds",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def for_variant(self, endpoint: str, variant: str) -> "VariantMetrics":
        labels = (endpoint, variant)
        return VariantMetrics(
            invocations=self.invocations.labels(*labels),
            invocations_per_instance=self.invocations_per_instance.labels(*labels),
            errors_4xx=self.errors_4xx.labels(*labels),
            errors_5xx=self.errors_5xx.labels(*labels),
            model_errors=self.model_errors.labels(*labels),
            model_latency=self.model_latency.labels(*labels),
            overhead_latency=self.overhead_latency.labels(*labels),
        )

    def forget(self, endpoint: str, variant: str) -> None:
        """Drop a deleted variant's series."""
        for metric in (
            self.invocations,
            self.invocations_per_instance,
            self.errors_4xx,
            self.errors_5xx,
            self.model_errors,
            self.model_latency,
            self.overhead_latency,
        ):
            try:
                metric.remove(endpoint, variant)
            except KeyError:
                pass


@dataclass(frozen=True, slots=True)
class VariantMetrics:
    invocations: Counter
    invocations_per_instance: Counter
    errors_4xx: Counter
    errors_5xx: Counter
    model_errors: Counter
    model_latency: Histogram
    overhead_latency: Histogram
