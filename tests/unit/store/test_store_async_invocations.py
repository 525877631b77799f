"""The asynchronous-inference queue: leases taken, renewed, run out, released; per endpoint."""


def add(store, id: str, endpoint: str = "Ep", received: int = 1_000) -> None:
    store.async_invocations.add(id, endpoint, received, received + 60_000, {"InputLocation": id})


def ids(taken) -> list[str]:
    return [item.id for item in taken]


def test_requests_are_taken_oldest_first_and_only_once_while_leased(store):
    queue = store.async_invocations
    add(store, "b", received=2_000)
    add(store, "a", received=1_000)
    add(store, "c", received=3_000)
    assert ids(queue.take("ep", 2, now_ms=5_000, lease_ms=10_000)) == ["a", "b"]
    assert ids(queue.take("EP", 5, now_ms=6_000, lease_ms=10_000)) == ["c"]
    assert queue.take("ep", 5, now_ms=7_000, lease_ms=10_000) == []


def test_a_lease_that_runs_out_lets_the_request_be_taken_again(store):
    queue = store.async_invocations
    add(store, "a")
    (first,) = queue.take("ep", 1, now_ms=5_000, lease_ms=1_000)
    assert first.attempts == 1
    assert first.request == {"InputLocation": "a"}
    queue.renew(["a"], lease_until_ms=9_000)
    assert queue.take("ep", 1, now_ms=8_000, lease_ms=1_000) == []
    (again,) = queue.take("ep", 1, now_ms=9_001, lease_ms=1_000)
    assert again.attempts == 2


def test_released_requests_come_back_and_finished_ones_do_not(store):
    queue = store.async_invocations
    add(store, "a")
    add(store, "b", received=2_000)
    queue.take("ep", 2, now_ms=5_000, lease_ms=60_000)
    queue.release("a")
    queue.finish("b")
    assert ids(queue.take("ep", 5, now_ms=5_000, lease_ms=60_000)) == ["a"]
    assert queue.backlog(["Ep"]) == {"ep": (1, 1_000)}


def test_endpoints_have_their_own_queues(store):
    queue = store.async_invocations
    add(store, "a", "one")
    add(store, "b", "two", received=500)
    add(store, "c", "two", received=700)
    assert ids(queue.take("one", 5, now_ms=5_000, lease_ms=1_000)) == ["a"]
    assert queue.backlog(["one", "two", "three"]) == {"one": (1, 1_000), "two": (2, 500)}
    queue.forget_endpoint("TWO")
    assert queue.backlog(["two"]) == {}
    assert queue.backlog([]) == {}
