"""Which instance of a single-model variant a request goes to, by RoutingStrategy."""

import asyncio
from collections import Counter

import pytest

from moorage.domain import PrefixRouting
from moorage.http import ConnectionPool
from moorage.metrics import EndpointMetrics
from moorage.routing import InstanceRoute, VariantRoute

PREFIX = PrefixRouting(prefix_length=1024, concurrency_threshold=2)


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def variant(loop, count: int, **settings) -> VariantRoute:
    async def build() -> VariantRoute:
        route = VariantRoute(
            "AllTraffic", 1.0, EndpointMetrics().for_variant("ep", "AllTraffic"), **settings
        )
        for number in range(count):
            pool = ConnectionPool(unix_path=f"/nonexistent/{number}.sock")
            route.instances.append(InstanceRoute(f"i-{number}", pool, "arn"))
        return route

    return loop.run_until_complete(build())


def test_least_outstanding_requests_never_picks_a_busier_instance(loop):
    route = variant(loop, 3)
    route.instances[0].outstanding = 1
    picked = Counter(route.pick_for([b"x"], None).instance_id for _ in range(300))
    assert set(picked) == {"i-1", "i-2"}


def test_random_picks_every_instance_whatever_its_load(loop):
    route = variant(loop, 3, is_random=True)
    route.instances[0].outstanding = 5
    picked = Counter(route.pick().instance_id for _ in range(300))
    assert set(picked) == {"i-0", "i-1", "i-2"}


def test_prefix_aware_sends_a_prefix_to_one_instance_and_spreads_prefixes(loop):
    route = variant(loop, 4, prefix=PREFIX)
    for n in range(40):
        body = [f"system prompt {n}|".encode(), b"question"]
        assert len({route.pick_for(body, None).instance_id for _ in range(5)}) == 1
    chosen = {route.pick_for([f"prompt {n}".encode()], None).instance_id for n in range(40)}
    assert len(chosen) > 1


def test_only_the_first_prefix_length_bytes_count(loop):
    route = variant(loop, 8, prefix=PrefixRouting(prefix_length=1024, concurrency_threshold=2))
    shared = b"s" * 1000
    first = route.pick_for([shared, b"x" * 24, b"tail one"], None)
    assert route.pick_for([shared + b"x" * 24 + b"tail two"], None) is first
    others = {route.pick_for([shared + bytes([n]) * 24], None) for n in range(32)}
    assert len(others) > 1


def test_prefix_aware_id_separates_equal_prefixes(loop):
    route = variant(loop, 8, prefix=PREFIX)
    body = [b"the same prompt"]
    assert len({route.pick_for(body, f"app-{n}").instance_id for n in range(32)}) > 1
    assert route.pick_for(body, "app-1") is route.pick_for(body, "app-1")


def test_a_busy_instance_passes_its_prefix_on_and_takes_it_back_when_free(loop):
    route = variant(loop, 3, prefix=PREFIX)
    body = [b"hot prefix"]
    home = route.pick_for(body, None)
    home.outstanding = PREFIX.concurrency_threshold
    overflow = route.pick_for(body, None)
    assert overflow is not home
    assert route.pick_for(body, None) is overflow  # the next in the prefix's order, each time
    home.outstanding = 0
    assert route.pick_for(body, None) is home


def test_replacing_an_instance_moves_only_its_share_of_prefixes(loop):
    route = variant(loop, 4, prefix=PREFIX)
    bodies = [[f"prompt {n}".encode()] for n in range(200)]
    before = [route.pick_for(body, None).instance_id for body in bodies]
    route.instances[3] = InstanceRoute("i-new", route.instances[3].pool, "arn")
    after = [route.pick_for(body, None).instance_id for body in bodies]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    # The replaced instance's prefixes go elsewhere, the new one takes its share: nothing else
    # moves.
    assert moved
    assert all(b == "i-3" or a == "i-new" for b, a in moved)
    assert len(moved) < len(bodies) / 2
