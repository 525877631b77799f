from moorage.control.alarms import parse_alarm
from moorage.control.deployment import Guard
from moorage.metrics import VariantMetrics


def test_guard_rolls_back_when_an_alarm_fires_on_the_new_fleet():
    shared = VariantMetrics()
    shared.errors_5xx.inc(5)  # served by the old fleet before the update
    green = shared.tee()
    guard = Guard((parse_alarm("Invocation5XXErrors > 0"),), watched={"AllTraffic": green})
    assert guard.reason(now=0.0) is None
    green.errors_5xx.inc()
    reason = guard.reason(now=0.0)
    assert reason is not None
    assert "Alarm 'Invocation5XXErrors > 0' fired on variant AllTraffic" in reason
    assert "Sum of Invocation5XXErrors: 1" in reason


def test_guard_rolls_back_an_update_past_its_execution_timeout():
    guard = Guard(deadline=1600.0, timeout_s=600.0)
    assert guard.reason(now=1599.9) is None
    reason = guard.reason(now=1600.0)
    assert reason is not None
    assert "MaximumExecutionTimeoutInSeconds (600 s)" in reason
