"""The memory budget of a multi-model instance."""

import pytest

from moorage.fleet.memory import instance_type_memory_mb, memory_budget_mb


@pytest.mark.parametrize(
    ("instance_type", "gib"),
    [
        ("ml.t2.medium", 4),
        ("ml.m5.large", 8),
        ("ml.m5.xlarge", 16),
        ("ml.m5.4xlarge", 64),
        ("ml.c5.xlarge", 8),
        ("ml.c6i.2xlarge", 16),
        ("ml.r5.large", 16),
        ("ml.g4dn.xlarge", 16),
    ],
)
def test_instance_type_memory(instance_type, gib):
    assert instance_type_memory_mb(instance_type) == gib * 1024


@pytest.mark.parametrize("instance_type", [None, "local", "ml.x9.huge"])
def test_unknown_instance_types(instance_type):
    assert instance_type_memory_mb(instance_type) is None


def test_budget_precedence():
    machine = 32 * 1024
    assert memory_budget_mb("ml.m5.large", model_setting="300", server_setting=500) == 300
    assert memory_budget_mb("ml.m5.large", model_setting=None, server_setting=500) == 500
    assert (
        memory_budget_mb("ml.m5.large", model_setting=None, server_setting=None, machine_mb=machine)
        == 8 * 1024
    )
    assert (
        memory_budget_mb(
            "ml.m5.24xlarge", model_setting=None, server_setting=None, machine_mb=machine
        )
        == 16 * 1024
    )
    assert memory_budget_mb(
        "local", model_setting=None, server_setting=None, machine_mb=machine
    ) == (16 * 1024)
