"""RuntimeConfig's multi-model memory, disk and zygote settings, read once from the environment."""

import pytest

from moorage.artifacts import DiskBudget
from moorage.errors import ValidationError
from moorage.runtime.config import DEFAULT_PRELOAD, SINGLE_MODEL_PRELOAD, load_config


def test_memory_budget_is_megabytes_and_off_by_default():
    assert load_config(env={}).memory_budget_bytes == 0
    config = load_config(env={"MOORAGE_MEMORY_BUDGET_MB": "512"})
    assert config.memory_budget_bytes == 512 * 2**20


@pytest.mark.parametrize("value", ["-1", "lots"])
def test_bad_memory_budget_names_the_variable(value):
    with pytest.raises(ValidationError, match="MOORAGE_MEMORY_BUDGET_MB"):
        load_config(env={"MOORAGE_MEMORY_BUDGET_MB": value})


def test_model_cache_budget_is_megabytes_with_a_free_space_floor():
    default = load_config(env={}).model_cache
    assert default == DiskBudget()
    config = load_config(
        env={"MOORAGE_MODEL_CACHE_MB": "300", "MOORAGE_MODEL_CACHE_MIN_FREE_MB": "0"}
    )
    assert config.model_cache == DiskBudget(max_bytes=300 * 2**20, min_free_bytes=0)


@pytest.mark.parametrize("name", ["MOORAGE_MODEL_CACHE_MB", "MOORAGE_MODEL_CACHE_MIN_FREE_MB"])
def test_bad_model_cache_budget_names_the_variable(name):
    with pytest.raises(ValidationError, match=name):
        load_config(env={name: "-5"})


def test_preload_defaults_depend_on_the_mode():
    assert load_config(env={}, multi_model=True).preload == DEFAULT_PRELOAD
    assert load_config(env={}, multi_model=False).preload == SINGLE_MODEL_PRELOAD


def test_preload_is_a_comma_separated_list():
    config = load_config(env={"MOORAGE_PRELOAD": " numpy, sklearn.tree ,,"})
    assert config.preload == ("numpy", "sklearn.tree")
    assert load_config(env={"MOORAGE_PRELOAD": ""}).preload == ()


def test_preload_refuses_what_is_not_a_module_name():
    with pytest.raises(ValidationError, match="MOORAGE_PRELOAD"):
        load_config(env={"MOORAGE_PRELOAD": "numpy; rm -rf"})


@pytest.mark.parametrize(("value", "expected"), [("", False), ("off", False), ("TRUE", True)])
def test_zygote_switch(value, expected):
    assert load_config(env={"MOORAGE_ZYGOTE": value}).use_zygote is expected


def test_zygote_is_on_by_default_only_for_multi_model_instances():
    assert load_config(env={}).use_zygote is False
    assert load_config(env={}, multi_model=True).use_zygote is True


def test_bad_zygote_switch_names_the_variable():
    with pytest.raises(ValidationError, match="MOORAGE_ZYGOTE"):
        load_config(env={"MOORAGE_ZYGOTE": "sometimes"})
