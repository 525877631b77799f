"""Traffic shares of variants: weight over the sum of weights."""

import pytest

from moorage.domain import traffic_shares
from moorage.errors import ValidationError


def test_shares_are_weights_over_their_sum() -> None:
    assert traffic_shares({"a": 1.0, "b": 3.0}) == {"a": 0.25, "b": 0.75}


def test_single_variant_takes_all_traffic() -> None:
    assert traffic_shares({"AllTraffic": 0.2}) == {"AllTraffic": 1.0}


def test_zero_weight_variant_gets_no_traffic() -> None:
    assert traffic_shares({"blue": 0.0, "green": 2.0}) == {"blue": 0.0, "green": 1.0}


def test_shares_sum_to_one() -> None:
    shares = traffic_shares({"a": 0.1, "b": 0.2, "c": 0.3})
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("weights", [{"a": 0.0, "b": 0.0}, {}])
def test_all_zero_weights_are_refused(weights: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="weight above 0"):
        traffic_shares(weights)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_weight_is_refused(bad: float) -> None:
    with pytest.raises(ValidationError, match="Variant 'b'"):
        traffic_shares({"a": 1.0, "b": bad})
