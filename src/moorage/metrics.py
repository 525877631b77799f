"""SageMaker's endpoint metrics (spec/LIMITS.md §7), as Prometheus series.

Names and dimensions are SageMaker's own (``Invocations{EndpointName, VariantName}``), so
dashboards and alarms written for CloudWatch translate one to one. Latencies are histograms in
microseconds, SageMaker's unit. The invocation path holds its variant's ``VariantMetrics``,
resolved once when a route is built; prometheus_client renders them at each scrape.

Multi-model endpoints add ``ModelLoadingWaitTime``, ``ModelDownloadingTime``,
``ModelLoadingTime``, ``ModelUnloadingTime`` (histograms, µs), ``ModelCacheHit`` (a summary of
1 per hit and 0 per miss: ``_sum`` is SageMaker's Sum, ``_count`` its SampleCount, their ratio
its Average) and ``LoadedModelCount`` (a gauge: models loaded on the variant's instances, summed
as CloudWatch's Sum statistic of the per-instance metric).
"""

from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from itertools import accumulate

from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.utils import floatToGoString

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


class Count:
    """A counter, or with ``set_function`` a gauge read at each scrape."""

    __slots__ = ("read", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.read: Callable[[], float] | None = None

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Distribution:
    """A histogram (``bounds`` given) or a summary (sum and count only)."""

    __slots__ = ("bounds", "buckets", "count", "total")

    def __init__(self, bounds: tuple[int, ...] = ()) -> None:
        self.bounds = bounds
        # One per bound (value <= bound, not cumulative), then one for +Inf.
        self.buckets = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.bounds:
            self.buckets[bisect_left(self.bounds, value)] += 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0 to 1) estimated from the buckets, as Prometheus'
        ``histogram_quantile`` does: linear within the bucket, the last bound past it. None
        without observations or bounds."""
        if not self.count or not self.bounds:
            return None
        rank = q * self.count
        seen = 0
        lower = 0.0
        for upper, in_bucket in zip(self.bounds, self.buckets, strict=False):
            if in_bucket and seen + in_bucket >= rank:
                return lower + (upper - lower) * (rank - seen) / in_bucket
            seen += in_bucket
            lower = upper
        return float(self.bounds[-1])


class _TeeCount(Count):
    """A count of its own that also counts into ``shared``."""

    __slots__ = ("shared",)

    def __init__(self, shared: Count) -> None:
        super().__init__()
        self.shared = shared

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount
        self.shared.inc(amount)


class _TeeDistribution(Distribution):
    """A distribution of its own that also records into ``shared``."""

    __slots__ = ("shared",)

    def __init__(self, shared: Distribution) -> None:
        super().__init__(shared.bounds)
        self.shared = shared

    def observe(self, value: float) -> None:
        super().observe(value)
        self.shared.observe(value)


@dataclass(frozen=True, slots=True)
class VariantMetrics:
    """One variant's series. Plain numbers, updated by the event loop thread alone: recording
    costs an attribute update, not a lock (prometheus_client's own metrics take ~1 µs each)."""

    invocations: Count = field(default_factory=Count)
    invocations_per_instance: Count = field(default_factory=Count)
    errors_4xx: Count = field(default_factory=Count)
    errors_5xx: Count = field(default_factory=Count)
    model_errors: Count = field(default_factory=Count)
    model_latency: Distribution = field(default_factory=lambda: Distribution(_LATENCY_BUCKETS))
    overhead_latency: Distribution = field(default_factory=lambda: Distribution(_LATENCY_BUCKETS))
    model_loading_wait_time: Distribution = field(
        default_factory=lambda: Distribution(_LOAD_BUCKETS)
    )
    model_downloading_time: Distribution = field(
        default_factory=lambda: Distribution(_LOAD_BUCKETS)
    )
    model_loading_time: Distribution = field(default_factory=lambda: Distribution(_LOAD_BUCKETS))
    model_unloading_time: Distribution = field(default_factory=lambda: Distribution(_LOAD_BUCKETS))
    model_setup_time: Distribution = field(default_factory=lambda: Distribution(_LOAD_BUCKETS))
    model_cache_hit: Distribution = field(default_factory=Distribution)
    loaded_model_count: Count = field(default_factory=Count)
    # Asynchronous endpoints (spec/LIMITS.md §4).
    async_processed: Count = field(default_factory=Count)
    async_failures: Count = field(default_factory=Count)
    expired_requests: Count = field(default_factory=Count)
    request_download_failures: Count = field(default_factory=Count)
    response_upload_failures: Count = field(default_factory=Count)
    notification_failures: Count = field(default_factory=Count)

    def tee(self) -> "VariantMetrics":
        """Series that start at zero and record into these too: what one fleet serves from now
        on (a deployment's alarms watch the new fleet), while the variant's own series, which
        every fleet of the variant shares, go on counting everything."""
        series: dict[str, Count | Distribution] = {}
        for member in fields(self):
            shared = getattr(self, member.name)
            if isinstance(shared, Count):
                series[member.name] = _TeeCount(shared)
            else:
                series[member.name] = _TeeDistribution(shared)
        return VariantMetrics(**series)  # type: ignore[arg-type]  # each member has its own type


# (attribute of VariantMetrics, exported name, help): counters, gauges, histograms, summaries.
_COUNTERS = (
    ("invocations", "Invocations", "InvokeEndpoint requests sent to the model"),
    (
        "invocations_per_instance",
        "InvocationsPerInstance",
        "Invocations divided by the variant's instance count",
    ),
    ("errors_4xx", "Invocation4XXErrors", "Requests answered with a 4xx status"),
    ("errors_5xx", "Invocation5XXErrors", "Requests answered with a 5xx status"),
    (
        "model_errors",
        "InvocationModelErrors",
        "Model calls that did not answer 2xx (errors, timeouts, broken connections)",
    ),
    # "Processsed": SageMaker's own spelling of the metric.
    ("async_processed", "InvocationsProcesssed", "Asynchronous requests processed"),
    ("async_failures", "InvocationFailures", "Asynchronous requests that failed"),
    ("expired_requests", "ExpiredRequests", "Asynchronous requests past their RequestTTLSeconds"),
    (
        "request_download_failures",
        "RequestDownloadFailures",
        "Asynchronous requests whose input could not be read",
    ),
    (
        "response_upload_failures",
        "ResponseUploadFailures",
        "Asynchronous results that could not be written",
    ),
    ("notification_failures", "NotificationFailures", "Notifications that could not be sent"),
)
_GAUGES = (("loaded_model_count", "LoadedModelCount", "Models loaded on the variant's instances"),)
_HISTOGRAMS = (
    ("model_latency", "ModelLatency", "Microseconds waited on the model container"),
    ("overhead_latency", "OverheadLatency", "Microseconds of the request not spent in the model"),
    (
        "model_loading_wait_time",
        "ModelLoadingWaitTime",
        "Microseconds a request waited for its model to be loaded",
    ),
    (
        "model_downloading_time",
        "ModelDownloadingTime",
        "Microseconds an instance took to download a model's data",
    ),
    (
        "model_loading_time",
        "ModelLoadingTime",
        "Microseconds an instance took to load a model (the Load call)",
    ),
    (
        "model_unloading_time",
        "ModelUnloadingTime",
        "Microseconds an instance took to unload a model",
    ),
    (
        "model_setup_time",
        "ModelSetupTime",
        "Microseconds a serverless cold start took, from starting an instance to its first ping",
    ),
)
_SUMMARIES = (
    (
        "model_cache_hit",
        "ModelCacheHit",
        "1 per request whose model was already loaded, 0 per request that waited for a load",
    ),
)


@dataclass(frozen=True, slots=True)
class Utilization:
    """A variant's instance metrics, in percent (None: not reported for the variant)."""

    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None


_UTILIZATION = (
    (
        "cpu_percent",
        "CPUUtilization",
        "Percent of one CPU core an instance uses, summed over cores; mean of the instances",
    ),
    (
        "memory_percent",
        "MemoryUtilization",
        "Percent of its instance type's memory an instance uses (PSS); mean of the instances",
    ),
    ("disk_percent", "DiskUtilization", "Percent of the data dir's disk in use"),
)


class EndpointMetrics:
    """The registry behind ``/metrics``; one per server. Series are read at each scrape."""

    def __init__(self) -> None:
        self._variants: dict[tuple[str, str], VariantMetrics] = {}
        self._backlogs: Callable[[], dict[str, Backlog]] = dict
        self._utilization: Callable[[], dict[tuple[str, str], Utilization]] = dict
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def for_variant(self, endpoint: str, variant: str) -> VariantMetrics:
        """The variant's series; the same ones for every fleet that serves it (blue/green)."""
        key = (endpoint, variant)
        metrics = self._variants.get(key)
        if metrics is None:
            metrics = self._variants[key] = VariantMetrics()
        return metrics

    def count_loaded_models(self, endpoint: str, variant: str, count: Callable[[], float]) -> None:
        """Report ``count()`` as the variant's LoadedModelCount, read at each scrape."""
        self.for_variant(endpoint, variant).loaded_model_count.read = count

    def read_backlogs(self, backlogs: Callable[[], dict[str, "Backlog"]]) -> None:
        """Report ``backlogs()`` (by endpoint) as the asynchronous endpoints' metrics."""
        self._backlogs = backlogs

    def read_utilization(
        self, utilization: Callable[[], dict[tuple[str, str], Utilization]]
    ) -> None:
        """Report ``utilization()`` (by endpoint and variant) as the instance metrics."""
        self._utilization = utilization

    def utilization(self, endpoint: str) -> dict[str, Utilization]:
        """The endpoint's instance metrics by variant, read now (for the console)."""
        return {v: u for (e, v), u in self._utilization().items() if e == endpoint}

    def of_endpoint(self, endpoint: str) -> dict[str, VariantMetrics]:
        """The endpoint's series by variant, for the console; creates none."""
        return {v: m for (e, v), m in list(self._variants.items()) if e == endpoint}

    def backlog(self, endpoint: str) -> "Backlog | None":
        """An asynchronous endpoint's queue as of the queue's last pass; None if not async."""
        return self._backlogs().get(endpoint)

    def forget(self, endpoint: str, variant: str) -> None:
        """Drop a deleted variant's series."""
        self._variants.pop((endpoint, variant), None)

    def collect(self) -> Iterator[Metric]:
        variants = list(self._variants.items())
        for attribute, name, documentation in _COUNTERS:
            counter = CounterMetricFamily(name, documentation, labels=_DIMENSIONS)
            for labels, metrics in variants:
                counter.add_metric(labels, getattr(metrics, attribute).value)
            yield counter
        for attribute, name, documentation in _GAUGES:
            gauge = GaugeMetricFamily(name, documentation, labels=_DIMENSIONS)
            for labels, metrics in variants:
                count: Count = getattr(metrics, attribute)
                if count.read is not None:
                    gauge.add_metric(labels, count.read())
            yield gauge
        for attribute, name, documentation in _HISTOGRAMS:
            histogram = HistogramMetricFamily(
                name, documentation, labels=_DIMENSIONS, unit="microseconds"
            )
            for labels, metrics in variants:
                distribution: Distribution = getattr(metrics, attribute)
                bounds = [*map(floatToGoString, distribution.bounds), "+Inf"]
                cumulative = list(accumulate(distribution.buckets))
                histogram.add_metric(
                    labels, list(zip(bounds, cumulative, strict=True)), distribution.total
                )
            yield histogram
        yield from _backlog_families(self._backlogs())
        utilization = self._utilization()
        for attribute, name, documentation in _UTILIZATION:
            gauge = GaugeMetricFamily(name, documentation, labels=_DIMENSIONS, unit="percent")
            for labels, usage in utilization.items():
                if (value := getattr(usage, attribute)) is not None:
                    gauge.add_metric(labels, value)
            yield gauge
        for attribute, name, documentation in _SUMMARIES:
            summary = SummaryMetricFamily(name, documentation, labels=_DIMENSIONS)
            for labels, metrics in variants:
                distribution = getattr(metrics, attribute)
                summary.add_metric(labels, distribution.count, distribution.total)
            yield summary


@dataclass(frozen=True, slots=True)
class Backlog:
    """An asynchronous endpoint's queue: requests waiting or running, the oldest's age, and the
    instances working it."""

    size: int
    oldest_age_s: float
    instances: int


def _backlog_families(backlogs: dict[str, Backlog]) -> Iterator[Metric]:
    """SageMaker's asynchronous-endpoint metrics, whose only dimension is the endpoint."""
    families = {
        "size": GaugeMetricFamily(
            "ApproximateBacklogSize", "Asynchronous requests queued or running", labels=_ENDPOINT
        ),
        "per_instance": GaugeMetricFamily(
            "ApproximateBacklogSizePerInstance",
            "ApproximateBacklogSize divided by the endpoint's instance count",
            labels=_ENDPOINT,
        ),
        "age": GaugeMetricFamily(
            "ApproximateAgeOfOldestRequest",
            "Seconds since the oldest queued asynchronous request arrived",
            labels=_ENDPOINT,
        ),
        "no_capacity": GaugeMetricFamily(
            "HasBacklogWithoutCapacity",
            "1 while requests are queued and the endpoint has no instance",
            labels=_ENDPOINT,
        ),
    }
    for endpoint, backlog in backlogs.items():
        labels = [endpoint]
        families["size"].add_metric(labels, backlog.size)
        families["per_instance"].add_metric(labels, backlog.size / max(1, backlog.instances))
        families["age"].add_metric(labels, backlog.oldest_age_s)
        families["no_capacity"].add_metric(
            labels, float(backlog.size > 0 and not backlog.instances)
        )
    yield from families.values()


_ENDPOINT = ("EndpointName",)
