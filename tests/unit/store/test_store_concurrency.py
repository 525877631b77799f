import threading

from store_builders import T0, arn_of, create_endpoint

from moorage.domain import EndpointStatus, ResourceKind
from moorage.store import open_store
from moorage.store._migrations import STEPS

S = EndpointStatus
_WRITES = 40


def _run_together(*targets):
    """Run the targets on threads released at once; re-raise the first failure."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def run(target):
        try:
            barrier.wait()
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _writer(store, prefix):
    def write():
        for i in range(_WRITES):
            name = f"{prefix}-{i}"
            create_endpoint(store, name, document={"i": i})
            assert store.endpoints.set_status(name, S.CREATING, S.IN_SERVICE)
            store.tags.add(arn_of(ResourceKind.ENDPOINT, name), {"writer": prefix})
            assert store.endpoints.get(name).status is S.IN_SERVICE

    return write


def test_two_stores_on_one_database_write_at_once_without_locking_errors(store_url):
    with open_store(store_url) as first, open_store(store_url) as second:
        _run_together(_writer(first, "a"), _writer(second, "b"))
        assert len(first.endpoints.all()) == 2 * _WRITES


def test_threads_sharing_one_store_write_at_once(store):
    _run_together(*(_writer(store, prefix) for prefix in "abcd"))
    assert len(store.endpoints.all()) == 4 * _WRITES


def test_exactly_one_of_two_racing_status_changes_wins(store):
    for i in range(_WRITES):
        create_endpoint(store, f"ep-{i}")
    outcomes = {S.IN_SERVICE: [], S.DELETING: []}

    def mover(new):
        def move():
            for i in range(_WRITES):
                outcomes[new].append(store.endpoints.set_status(f"ep-{i}", S.CREATING, new))

        return move

    _run_together(mover(S.IN_SERVICE), mover(S.DELETING))
    for i in range(_WRITES):
        won = [new for new in outcomes if outcomes[new][i]]
        assert len(won) == 1
        assert store.endpoints.get(f"ep-{i}").status is won[0]


def test_stores_opened_at_once_on_a_fresh_database_migrate_it_once(store_url):
    opened = []

    def open_one():
        opened.append(open_store(store_url))

    try:
        _run_together(*([open_one] * 4))
        assert [store.schema_version for store in opened] == [len(STEPS)] * 4
    finally:
        for store in opened:
            store.close()


def test_exactly_one_of_two_racing_deletes_wins(store):
    for i in range(_WRITES):
        store.models.create(f"m-{i}", arn_of(ResourceKind.MODEL, f"m-{i}"), {}, T0)
    outcomes = {"first": [], "second": []}

    def deleter(who):
        def delete():
            for i in range(_WRITES):
                outcomes[who].append(store.models.delete(f"m-{i}"))

        return delete

    _run_together(deleter("first"), deleter("second"))
    for first, second in zip(outcomes["first"], outcomes["second"], strict=True):
        assert first != second


def test_racing_tag_writes_to_one_key_all_succeed(store):
    tagged = arn_of(ResourceKind.MODEL, "m")

    def tagger(value):
        def tag():
            for _ in range(_WRITES):
                store.tags.add(tagged, {"team": value})

        return tag

    _run_together(tagger("a"), tagger("b"))
    (tag,) = store.tags.list(tagged, max_results=10).items
    assert tag.value in {"a", "b"}
