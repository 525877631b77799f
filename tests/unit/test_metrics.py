"""The /metrics exposition: SageMaker's names and dimensions, rendered by prometheus_client."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from moorage.metrics import EndpointMetrics


def samples(metrics: EndpointMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def labels(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"EndpointName": "ep", "VariantName": "A", **extra}.items()))


def test_counters_histograms_summaries_and_gauges_are_exposed_per_variant():
    metrics = EndpointMetrics()
    variant = metrics.for_variant("ep", "A")
    variant.invocations.inc()
    variant.invocations.inc()
    variant.invocations_per_instance.inc(0.5)
    for value in (100, 101, 70_000_000):
        variant.model_latency.observe(value)
    variant.model_cache_hit.observe(1)
    variant.model_cache_hit.observe(0)
    metrics.count_loaded_models("ep", "A", lambda: 7)

    seen = samples(metrics)
    assert seen[("Invocations_total", labels())] == 2
    assert seen[("InvocationsPerInstance_total", labels())] == 0.5
    # Buckets are cumulative and bounds inclusive, as Prometheus histograms are.
    assert seen[("ModelLatency_microseconds_bucket", labels(le="100.0"))] == 1
    assert seen[("ModelLatency_microseconds_bucket", labels(le="250.0"))] == 2
    assert seen[("ModelLatency_microseconds_bucket", labels(le="6e+07"))] == 2
    assert seen[("ModelLatency_microseconds_bucket", labels(le="+Inf"))] == 3
    assert seen[("ModelLatency_microseconds_count", labels())] == 3
    assert seen[("ModelLatency_microseconds_sum", labels())] == 70_000_201
    assert seen[("ModelCacheHit_count", labels())] == 2
    assert seen[("ModelCacheHit_sum", labels())] == 1
    assert seen[("LoadedModelCount", labels())] == 7


def test_fleets_of_one_variant_share_its_series_until_it_is_forgotten():
    metrics = EndpointMetrics()
    metrics.for_variant("ep", "A").invocations.inc()
    metrics.for_variant("ep", "A").invocations.inc()
    assert samples(metrics)[("Invocations_total", labels())] == 2
    metrics.forget("ep", "A")
    assert ("Invocations_total", labels()) not in samples(metrics)


def test_quantiles_interpolate_within_buckets_as_prometheus_does():
    distribution = EndpointMetrics().for_variant("ep", "A").model_latency
    assert distribution.quantile(0.5) is None
    for value in (100, 200, 200, 70_000_000):  # buckets (0, 100], (100, 250], +Inf
        distribution.observe(value)
    assert distribution.quantile(0.25) == 100
    assert distribution.quantile(0.5) == 100 + 150 * 1 / 2
    assert distribution.quantile(0.75) == 250
    assert distribution.quantile(0.99) == 60_000_000  # past the last bound: the last bound


def test_the_console_reads_an_endpoints_variants_without_creating_any():
    metrics = EndpointMetrics()
    metrics.for_variant("ep", "A").invocations.inc()
    metrics.for_variant("other", "A")
    assert list(metrics.of_endpoint("ep")) == ["A"]
    assert metrics.of_endpoint("missing") == {}
    assert "missing" not in generate_latest(metrics.registry).decode()
    assert metrics.backlog("ep") is None


def test_a_tee_counts_from_zero_and_into_the_shared_series_too():
    metrics = EndpointMetrics()
    shared = metrics.for_variant("ep", "AllTraffic")
    shared.invocations.inc(3)
    tee = shared.tee()
    tee.invocations.inc()
    tee.model_latency.observe(1_000)
    assert (tee.invocations.value, shared.invocations.value) == (1.0, 4.0)
    assert (tee.model_latency.count, shared.model_latency.count) == (1, 1)
    assert (
        samples(metrics)[
            ("Invocations_total", (("EndpointName", "ep"), ("VariantName", "AllTraffic")))
        ]
        == 4.0
    )
