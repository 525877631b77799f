import pytest

from moorage.control.rollout import Plan, plan, rolling_batch, summed_waits, traffic_steps


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


def rolling_policy(batch: dict, rollback: dict | None = None) -> dict:
    policy = {"MaximumBatchSize": batch, "WaitIntervalInSeconds": 3}
    if rollback is not None:
        policy["RollbackMaximumBatchSize"] = rollback
    return {"RollingUpdatePolicy": policy}


@pytest.mark.parametrize(
    ("size", "instances", "batch"),
    [
        ({"Type": "INSTANCE_COUNT", "Value": 1}, 4, 1),
        ({"Type": "CAPACITY_PERCENT", "Value": 50}, 1, 1),
        ({"Type": "CAPACITY_PERCENT", "Value": 30}, 10, 3),
        ({"Type": "CAPACITY_PERCENT", "Value": 25}, 10, 3),
        ({"Type": "CAPACITY_PERCENT", "Value": 100}, 10, 10),
    ],
)
def test_rolling_batches_round_up_to_whole_instances(size, instances, batch):
    assert rolling_batch(size, instances) == batch


def test_rolling_plan_rolls_back_all_at_once_by_default():
    steps = plan(
        rolling_policy({"Type": "INSTANCE_COUNT", "Value": 1}),
        4,
        old_instances=2,
        is_guarded=True,
        can_roll=True,
    )
    assert (steps.batch, steps.rollback_batch, steps.wait_s) == (1, 2, 3.0)


def test_unguarded_or_unrollable_updates_fall_back_to_all_at_once_without_baking():
    canary = policy(
        {
            "Type": "CANARY",
            "WaitIntervalInSeconds": 5,
            "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
        }
    )
    rolling = rolling_policy({"Type": "INSTANCE_COUNT", "Value": 1})
    for config, is_guarded, can_roll in ((canary, False, True), (rolling, True, False)):
        steps = plan(config, 4, old_instances=4, is_guarded=is_guarded, can_roll=can_roll)
        assert steps == Plan([(1.0, 0.0)])


def test_summed_waits_count_every_bake_and_the_termination_wait():
    linear = policy(
        {
            "Type": "LINEAR",
            "WaitIntervalInSeconds": 10,
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
        }
    )
    linear["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] = 7
    assert summed_waits(linear, 4) == 47.0
    assert summed_waits(rolling_policy({"Type": "INSTANCE_COUNT", "Value": 2}), 5) == 9.0
