"""SageMaker's endpoint metrics (spec/LIMITS.md §7), as Prometheus series.

Names and dimensions are SageMaker's own (``Invocations{EndpointName, VariantName}``), so
dashboards and alarms written for CloudWatch translate one to one. Latencies are histograms in
microseconds, SageMaker's unit. The invocation path holds per-variant children, resolved once
when a route is built, so recording costs a few attribute lookups.

Multi-model endpoints add ``ModelLoadingWaitTime``, ``ModelDownloadingTime``,
``ModelLoadingTime``, ``ModelUnloadingTime`` (histograms, µs), ``ModelCacheHit`` (a summary of
1 per hit and 0 per miss: ``_sum`` is SageMaker's Sum, ``_count`` its SampleCount, their ratio
its Average) and ``LoadedModelCount`` (a gauge: models loaded on the variant's instances, summed
as CloudWatch's Sum statistic of the per-instance metric).
"""

from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

_DIMENSIONS = ("EndpointName", "VariantName")
# Microseconds, from 100 µs to 60 s.
_LATENCY_BUCKETS = (
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
    250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
)  # fmt: skip
# Model downloads and loads: from 1 ms to 6 minutes, SageMaker's longest load.
_LOAD_BUCKETS = (
    1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000, 120_000_000, 360_000_000,
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
        self.model_loading_wait_time = self._load_histogram(
            "ModelLoadingWaitTime", "Microseconds a request waited for its model to be loaded"
        )
        self.model_downloading_time = self._load_histogram(
            "ModelDownloadingTime", "Microseconds an instance took to download a model's data"
        )
        self.model_loading_time = self._load_histogram(
            "ModelLoadingTime", "Microseconds an instance took to load a model (the Load call)"
        )
        self.model_unloading_time = self._load_histogram(
            "ModelUnloadingTime", "Microseconds an instance took to unload a model"
        )
        self.model_cache_hit = Summary(
            "ModelCacheHit",
            "1 per request whose model was already loaded, 0 per request that waited for a load",
            _DIMENSIONS,
            registry=r,
        )
        self.loaded_model_count = Gauge(
            "LoadedModelCount",
            "Models loaded on the variant's instances",
            _DIMENSIONS,
            registry=r,
        )

    def _load_histogram(self, name: str, documentation: str) -> Histogram:
        return Histogram(
            name,
            documentation,
            _DIMENSIONS,
            unit="microseconds",
            buckets=_LOAD_BUCKETS,
            registry=self.registry,
        )

    def count_loaded_models(self, endpoint: str, variant: str, count: Callable[[], float]) -> None:
        """Report ``count()`` as the variant's LoadedModelCount, read at each scrape."""
        self.loaded_model_count.labels(endpoint, variant).set_function(count)

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
            model_loading_wait_time=self.model_loading_wait_time.labels(*labels),
            model_downloading_time=self.model_downloading_time.labels(*labels),
            model_loading_time=self.model_loading_time.labels(*labels),
            model_unloading_time=self.model_unloading_time.labels(*labels),
            model_cache_hit=self.model_cache_hit.labels(*labels),
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
            self.model_loading_wait_time,
            self.model_downloading_time,
            self.model_loading_time,
            self.model_unloading_time,
            self.model_cache_hit,
            self.loaded_model_count,
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
    model_loading_wait_time: Histogram
    model_downloading_time: Histogram
    model_loading_time: Histogram
    model_unloading_time: Histogram
    model_cache_hit: Summary
