"""Deployment alarms: in moorage, an ``AlarmName`` is the alarm itself, a predicate over the
new fleet's metrics.

SageMaker's ``AutoRollbackConfiguration`` names CloudWatch alarms, which moorage cannot read.
Instead the name says what to watch, in the words of SageMaker's metrics (spec/LIMITS.md §7)::

    <Metric> [<Statistic>] > <Threshold>

    Invocation5XXErrors > 0              more than 0 requests answered 5xx (Sum, the default)
    Invocation5XXErrors Average > 2%     more than 2 % of requests answered 5xx
    ModelLatency p99 > 250ms             99th percentile of the time spent in the model
    OverheadLatency Average > 20ms

The error counts (``Invocation4XXErrors``, ``Invocation5XXErrors``, ``InvocationModelErrors``)
take ``Sum`` (a count) or ``Average`` (the share of invocations, as CloudWatch's Average of
these 0-or-1 metrics is; a fraction or a percent). The latencies (``ModelLatency``,
``OverheadLatency``) take ``Average`` or a percentile ``p0.1``..``p99.9``, with a threshold in
microseconds (SageMaker's unit) or in ``us``, ``ms`` or ``s``. Names are matched ignoring case.

An alarm is evaluated on each variant of the new fleet, over what that fleet has served since
traffic started moving to it, and fires when the value is above the threshold; without
invocations it has no value and does not fire.
"""

import re
from dataclasses import dataclass

from moorage.errors import ValidationError
from moorage.metrics import Count, Distribution, VariantMetrics

# Wire name -> VariantMetrics attribute.
_COUNTS = {
    "Invocation4XXErrors": "errors_4xx",
    "Invocation5XXErrors": "errors_5xx",
    "InvocationModelErrors": "model_errors",
}
_LATENCIES = {"ModelLatency": "model_latency", "OverheadLatency": "overhead_latency"}
_METRICS = {name.lower(): name for name in (*_COUNTS, *_LATENCIES)}
_MICROSECONDS = {"": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}
_FORM = re.compile(
    r"\s*(?P<metric>\w+)(?:\s+(?P<statistic>[\w.]+))?\s*>\s*"
    r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>%|us|ms|s)?\s*",
    re.IGNORECASE,
)
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)", re.IGNORECASE)
HELP = (
    "moorage evaluates an alarm from its name, '<Metric> [<Statistic>] > <Threshold>', over the "
    "new fleet's metrics (CloudWatch alarms cannot be read here), e.g. "
    "'Invocation5XXErrors > 0', 'Invocation5XXErrors Average > 2%', 'ModelLatency p99 > 250ms'. "
    f"Metrics: {', '.join(_COUNTS)} (Sum or Average), {', '.join(_LATENCIES)} (Average or "
    "pNN, a threshold in us, ms or s)."
)


@dataclass(frozen=True, slots=True)
class Alarm:
    name: str  # as the caller wrote it
    metric: str  # SageMaker's metric name
    statistic: str  # "Sum", "Average" or "pNN"
    threshold: float  # a count, a fraction of invocations, or microseconds

    def value(self, metrics: VariantMetrics) -> float | None:
        """The statistic over ``metrics``; None while there is nothing to measure."""
        if self.metric in _COUNTS:
            count: Count = getattr(metrics, _COUNTS[self.metric])
            if self.statistic == "Sum":
                return count.value
            invocations = metrics.invocations.value
            return count.value / invocations if invocations else None
        latency: Distribution = getattr(metrics, _LATENCIES[self.metric])
        if self.statistic == "Average":
            return latency.total / latency.count if latency.count else None
        return latency.quantile(float(self.statistic[1:]) / 100)


def parse_alarm(name: str) -> Alarm:
    """The alarm ``name`` describes; ValidationError, showing the accepted form, if none."""
    found = _FORM.fullmatch(name)
    metric = _METRICS.get(found["metric"].lower()) if found else None
    if found is None or metric is None:
        raise ValidationError(f"Cannot evaluate alarm '{name}'. {HELP}")
    statistic = _statistic(name, metric, found["statistic"])
    unit = (found["unit"] or "").lower()
    number = float(found["number"])
    if metric in _LATENCIES:
        if unit == "%":
            raise ValidationError(f"Alarm '{name}': {metric} is a time; use us, ms or s. {HELP}")
        return Alarm(name, metric, statistic, number * _MICROSECONDS[unit])
    if unit and (unit != "%" or statistic == "Sum"):
        raise ValidationError(
            f"Alarm '{name}': the Sum of {metric} is a count, the Average a fraction or a "
            f"percent. {HELP}"
        )
    return Alarm(name, metric, statistic, number / 100 if unit == "%" else number)


def _statistic(name: str, metric: str, written: str | None) -> str:
    if metric in _COUNTS:
        if written is None:
            return "Sum"
        for statistic in ("Sum", "Average"):
            if written.lower() == statistic.lower():
                return statistic
        raise ValidationError(f"Alarm '{name}': {metric} takes Sum or Average. {HELP}")
    if written is not None and written.lower() == "average":
        return "Average"
    percentile = _PERCENTILE.fullmatch(written or "")
    if percentile is None or not 0 < float(percentile[1]) < 100:
        raise ValidationError(f"Alarm '{name}': {metric} takes Average or p0.1 to p99.9. {HELP}")
    return f"p{percentile[1]}"
