import pytest

from moorage.control.rollout import traffic_steps


def policy(routing: dict) -> dict:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}}


def test_no_deployment_config_moves_all_traffic_at_once_without_baking():
    assert traffic_steps(None, 2) == [(1.0, 0.0)]


def test_all_at_once_bakes_after_the_shift():
    assert traffic_steps(policy({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 30}), 4) == [
        (1.0, 30.0)
    ]


@pytest.mark.parametrize(
    ("size", "instances", "share"),
    [
        ({"Type": "CAPACITY_PERCENT", "Value": 10}, 4, 0.1),
        ({"Type": "INSTANCE_COUNT", "Value": 1}, 4, 0.25),
        ({"Type": "INSTANCE_COUNT", "Value": 8}, 4, 1.0),
    ],
)
def test_canary_shifts_its_size_then_the_rest(size, instances, share):
    steps = traffic_steps(
        policy({"Type": "CANARY", "WaitIntervalInSeconds": 5, "CanarySize": size}), instances
    )
    expected = [(share, 5.0), (1.0, 5.0)] if share < 1 else [(1.0, 5.0)]
    assert steps == expected


def test_linear_moves_in_equal_steps_up_to_all_traffic():
    steps = traffic_steps(
        policy(
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 2,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 30},
            }
        ),
        10,
    )
    assert [share for share, _ in steps] == pytest.approx([0.3, 0.6, 0.9, 1.0])
    assert {wait for _, wait in steps} == {2.0}
