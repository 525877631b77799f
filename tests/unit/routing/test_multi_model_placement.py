"""Where a request for a model of a multi-model variant goes (routing.table's policy)."""

import asyncio

import pytest

from moorage.http import ConnectionPool
from moorage.metrics import EndpointMetrics
from moorage.routing import (
    InstanceModels,
    InstanceRoute,
    LoadedModel,
    Loading,
    ModelPrefix,
    MultiModelSource,
    VariantRoute,
)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def variant(loop, count: int) -> VariantRoute:
    async def build() -> VariantRoute:
        route = VariantRoute(
            "AllTraffic",
            1.0,
            EndpointMetrics().for_variant("ep", "AllTraffic"),
            multi_model=MultiModelSource(ModelPrefix("/models")),
        )
        for number in range(count):
            pool = ConnectionPool(unix_path=f"/nonexistent/{number}.sock")
            route.instances.append(
                InstanceRoute(f"i{number}", pool, "arn", models=InstanceModels())
            )
        return route

    return loop.run_until_complete(build())


def load(instance: InstanceRoute, key: str, in_flight: int = 0) -> LoadedModel:
    assert instance.models is not None
    model = instance.models.loaded[key] = LoadedModel(key, key, in_flight)
    return model


def test_cold_model_goes_to_the_instance_with_fewest_models(loop):
    route = variant(loop, 3)
    load(route.instances[0], "a")
    load(route.instances[1], "b")
    load(route.instances[1], "c")
    placement = route.place("new")
    assert placement is not None
    assert placement.instance is route.instances[2]
    assert not placement.is_loaded
    assert placement.loading is None


def test_loaded_model_goes_to_its_least_busy_holder(loop):
    route = variant(loop, 3)
    load(route.instances[0], "a", in_flight=1)
    load(route.instances[1], "a", in_flight=0)
    placement = route.place("a")
    assert placement is not None
    assert placement.instance is route.instances[1]
    assert placement.is_loaded
    assert placement.spread_to is None


def test_busy_holder_spreads_the_model_to_the_roomiest_other_instance(loop):
    route = variant(loop, 3)
    load(route.instances[0], "hot", in_flight=2)
    load(route.instances[1], "x")
    placement = route.place("hot")
    assert placement is not None
    assert placement.instance is route.instances[0]
    assert placement.spread_to is route.instances[2]


def test_no_second_spread_while_one_is_loading(loop):
    route = variant(loop, 3)
    load(route.instances[0], "hot", in_flight=5)
    models = route.instances[1].models
    assert models is not None
    models.loading["hot"] = Loading("hot", "hot", loop.create_future())
    placement = route.place("hot")
    assert placement is not None
    assert placement.instance is route.instances[0]
    assert placement.spread_to is None


def test_request_for_a_model_being_loaded_waits_for_that_load(loop):
    route = variant(loop, 2)
    models = route.instances[1].models
    assert models is not None
    loading = models.loading["m"] = Loading("m", "m", loop.create_future())
    placement = route.place("m")
    assert placement is not None
    assert placement.instance is route.instances[1]
    assert placement.loading is loading


def test_no_instance_no_placement(loop):
    assert variant(loop, 0).place("m") is None


def test_lru_victim_is_the_oldest_idle_model():
    models = InstanceModels()
    for key in ("a", "b", "c"):
        models.loaded[key] = LoadedModel(key, key)
    assert models.hit("a") is not None  # a is now the most recently used, and busy
    victim = models.idle_victim(keep="c")
    assert victim is not None
    assert victim.key == "b"
    models.loaded["b"].in_flight = 1
    assert models.idle_victim(keep="c") is None
    assert models.will_free_memory(keep="c")
