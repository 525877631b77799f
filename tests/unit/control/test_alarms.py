import pytest

from moorage.control.alarms import parse_alarm
from moorage.errors import ValidationError
from moorage.metrics import VariantMetrics


@pytest.mark.parametrize(
    ("name", "metric", "statistic", "threshold"),
    [
        ("Invocation5XXErrors > 0", "Invocation5XXErrors", "Sum", 0.0),
        ("invocation4xxerrors sum > 3", "Invocation4XXErrors", "Sum", 3.0),
        ("InvocationModelErrors Average > 2%", "InvocationModelErrors", "Average", 0.02),
        ("Invocation5XXErrors Average > 0.5", "Invocation5XXErrors", "Average", 0.5),
        ("ModelLatency p99 > 250ms", "ModelLatency", "p99", 250_000.0),
        ("ModelLatency p99.9 > 1.5 s", "ModelLatency", "p99.9", 1_500_000.0),
        ("OverheadLatency Average > 800", "OverheadLatency", "Average", 800.0),
        ("OverheadLatency average>20us", "OverheadLatency", "Average", 20.0),
    ],
)
def test_alarm_names_read_as_predicates(name, metric, statistic, threshold):
    alarm = parse_alarm(name)
    assert (alarm.name, alarm.metric, alarm.statistic) == (name, metric, statistic)
    assert alarm.threshold == pytest.approx(threshold)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("churn-5xx-alarm", "CloudWatch alarms cannot be read here"),
        ("CPUUtilization > 80", "Cannot evaluate alarm"),
        ("Invocation5XXErrors < 1", "Cannot evaluate alarm"),
        ("Invocation5XXErrors > 2%", "the Average a fraction or a percent"),
        ("Invocation5XXErrors > 2ms", "the Average a fraction or a percent"),
        ("Invocation5XXErrors p99 > 1", "takes Sum or Average"),
        ("ModelLatency > 250ms", "takes Average or p0.1 to p99.9"),
        ("ModelLatency p100 > 250ms", "takes Average or p0.1 to p99.9"),
        ("ModelLatency Sum > 250ms", "takes Average or p0.1 to p99.9"),
        ("ModelLatency p99 > 5%", "is a time"),
    ],
)
def test_alarm_names_moorage_cannot_read_are_refused_with_the_form(name, says):
    with pytest.raises(ValidationError, match="'<Metric> \\[<Statistic>\\] > <Threshold>'") as e:
        parse_alarm(name)
    assert says in str(e.value)


def test_error_alarms_count_or_share_what_was_served():
    metrics = VariantMetrics()
    assert parse_alarm("Invocation5XXErrors Average > 0").value(metrics) is None
    for status in (200, 200, 500, 200):
        metrics.invocations.inc()
        if status >= 500:
            metrics.errors_5xx.inc()
    assert parse_alarm("Invocation5XXErrors > 0").value(metrics) == 1.0
    assert parse_alarm("Invocation5XXErrors Average > 10%").value(metrics) == 0.25


def test_latency_alarms_read_the_distribution():
    metrics = VariantMetrics()
    assert parse_alarm("ModelLatency p99 > 1ms").value(metrics) is None
    for microseconds in (100, 200, 300, 400_000):
        metrics.model_latency.observe(microseconds)
    assert parse_alarm("ModelLatency Average > 1ms").value(metrics) == pytest.approx(100_150)
    p99 = parse_alarm("ModelLatency p99 > 250ms").value(metrics)
    assert p99 is not None
    assert 250_000 < p99 <= 500_000
