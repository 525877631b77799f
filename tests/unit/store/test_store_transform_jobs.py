"""Transform jobs in the store: status compare-and-sets, leases, listing by status."""

import pytest
from store_builders import T0, arn_of, at

from moorage.domain import ResourceKind, TransformJobStatus
from moorage.errors import InvalidTransition
from moorage.store import AlreadyExists, ListQuery, SortBy, SortOrder

S = TransformJobStatus
_DOCUMENT = {"TransformJobName": "Nightly", "ResolvedModel": {"Name": "m"}}


def _create(store, name="Nightly", creation_time=T0):
    arn = arn_of(ResourceKind.TRANSFORM_JOB, name)
    return store.transform_jobs.create(name, arn, _DOCUMENT, creation_time)


def test_a_new_job_is_in_progress_with_no_start_or_end(store):
    created = _create(store)
    assert created.status is S.IN_PROGRESS
    assert (created.start_time, created.end_time, created.failure_reason) == (None, None, None)
    assert store.transform_jobs.get("NIGHTLY") == created
    with pytest.raises(
        AlreadyExists, match=r'existing transform job "arn:.*transform-job/nightly"'
    ):
        _create(store, "nightly")


def test_set_status_is_a_compare_and_set_that_ends_the_job(store):
    _create(store)
    assert store.transform_jobs.set_status("nightly", S.IN_PROGRESS, S.STOPPING) is True
    # The runner finishing the job lost the race to StopTransformJob.
    assert store.transform_jobs.set_status("nightly", S.IN_PROGRESS, S.COMPLETED) is False
    done_at = int(at(9).timestamp() * 1000)
    assert store.transform_jobs.set_status("nightly", S.STOPPING, S.STOPPED, at_ms=done_at) is True
    record = store.transform_jobs.get("nightly")
    assert record.status is S.STOPPED
    assert record.end_time == record.last_modified_time == at(9)
    with pytest.raises(InvalidTransition):
        store.transform_jobs.set_status("nightly", S.STOPPED, S.IN_PROGRESS)


def test_a_failed_job_keeps_its_reason(store):
    _create(store)
    store.transform_jobs.set_status("nightly", S.IN_PROGRESS, S.FAILED, failure_reason="bad x")
    assert store.transform_jobs.get("nightly").failure_reason == "bad x"


def test_one_server_holds_a_job_until_its_lease_runs_out(store):
    _create(store)
    jobs = store.transform_jobs
    assert jobs.take("nightly", "a", now=1000, lease_ms=500) is True
    assert jobs.take("nightly", "b", now=1200, lease_ms=500) is False
    jobs.renew(["nightly"], "a", lease_until_ms=2000)
    assert jobs.take("nightly", "b", now=1600, lease_ms=500) is False
    assert jobs.take("nightly", "b", now=2001, lease_ms=500) is True  # a died
    record = jobs.get("nightly")
    assert (record.lease_owner, record.lease_until_ms) == ("b", 2501)
    assert record.start_time is not None
    assert record.start_time.timestamp() == 1.0  # from the first take
    jobs.release(["nightly"], "b")
    assert jobs.take("nightly", "c", now=2100, lease_ms=500) is True


def test_only_jobs_in_progress_are_taken_and_active_lists_those_to_act_on(store):
    for index, name in enumerate(["a", "b", "c"]):
        _create(store, name, at(index))
    store.transform_jobs.set_status("b", S.IN_PROGRESS, S.STOPPING)
    store.transform_jobs.set_status("c", S.IN_PROGRESS, S.COMPLETED)
    assert [(j.name, j.status) for j in store.transform_jobs.active()] == [
        ("a", S.IN_PROGRESS),
        ("b", S.STOPPING),
    ]
    assert store.transform_jobs.take("b", "x", now=1, lease_ms=1) is False
    assert store.transform_jobs.take("c", "x", now=1, lease_ms=1) is False


def test_list_filters_by_status_and_sorts_by_status(store):
    for index, name in enumerate(["a", "b", "c"]):
        _create(store, name, at(index))
    store.transform_jobs.set_status("b", S.IN_PROGRESS, S.FAILED)
    listed = store.transform_jobs.list(ListQuery(status_equals=S.IN_PROGRESS, max_results=10))
    assert [j.name for j in listed.items] == ["c", "a"]
    by_status = store.transform_jobs.list(
        ListQuery(sort_by=SortBy.STATUS, sort_order=SortOrder.ASCENDING, max_results=2)
    )
    assert [j.name for j in by_status.items] == ["b", "a"]
    rest = store.transform_jobs.list(
        ListQuery(
            sort_by=SortBy.STATUS,
            sort_order=SortOrder.ASCENDING,
            max_results=2,
            next_token=by_status.next_token,
        )
    )
    assert [j.name for j in rest.items] == ["c"]
