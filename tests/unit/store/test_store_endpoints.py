import pytest
from store_builders import T0, at, create_endpoint

from moorage.domain import Endpoint, EndpointStatus
from moorage.errors import InvalidTransition
from moorage.store import AlreadyExists

S = EndpointStatus
_DOCUMENT = {"DeploymentConfig": {"BlueGreenUpdatePolicy": {}}, "Desired": {"v": 2}}


def _create(store, name="Churn"):
    return create_endpoint(store, name, config="config-a", document=_DOCUMENT)


def test_a_new_endpoint_is_creating_at_generation_one(store):
    created = _create(store)
    assert isinstance(created, Endpoint)
    assert created.status is S.CREATING
    assert created.generation == 1
    assert created.creation_time == created.last_modified_time == T0
    assert created.failure_reason is None
    assert created.pending_config_name is None
    assert store.endpoints.get("CHURN") == created


def test_create_refuses_a_name_taken_in_another_case(store):
    _create(store)
    with pytest.raises(AlreadyExists, match=r'existing endpoint "arn:.*endpoint/churn"'):
        _create(store, "churn")


def test_set_status_moves_the_endpoint_and_bumps_generation(store):
    _create(store)
    assert store.endpoints.set_status("churn", S.CREATING, S.IN_SERVICE, at=at(5)) is True
    record = store.endpoints.get("Churn")
    assert record.status is S.IN_SERVICE
    assert record.generation == 2
    assert record.last_modified_time == at(5)
    assert record.creation_time == T0


def test_set_status_loses_to_the_writer_that_moved_first(store):
    _create(store)
    assert store.endpoints.set_status("Churn", S.CREATING, S.DELETING) is True
    assert store.endpoints.set_status("Churn", S.CREATING, S.IN_SERVICE) is False
    record = store.endpoints.get("Churn")
    assert record.status is S.DELETING
    assert record.generation == 2


def test_set_status_returns_false_for_a_missing_endpoint(store):
    assert store.endpoints.set_status("nope", S.CREATING, S.IN_SERVICE) is False


def test_set_status_refuses_a_transition_the_table_lacks(store):
    _create(store)
    with pytest.raises(InvalidTransition):
        store.endpoints.set_status("Churn", S.CREATING, S.UPDATING)
    assert store.endpoints.get("Churn").status is S.CREATING


def test_set_status_records_a_failure_reason_and_the_next_status_clears_it(store):
    _create(store)
    store.endpoints.set_status("Churn", S.CREATING, S.IN_SERVICE)
    store.endpoints.set_status("Churn", S.IN_SERVICE, S.UPDATING, pending_config_name="config-b")
    store.endpoints.set_status(
        "Churn", S.UPDATING, S.IN_SERVICE, failure_reason="ping failed", pending_config_name=None
    )
    record = store.endpoints.get("Churn")
    assert (record.status, record.failure_reason) == (S.IN_SERVICE, "ping failed")
    assert record.endpoint_config_name == "config-a"
    assert record.pending_config_name is None
    store.endpoints.set_status("Churn", S.IN_SERVICE, S.DELETING)
    assert store.endpoints.get("Churn").failure_reason is None


def test_a_finished_update_switches_config_and_document_in_one_write(store):
    _create(store)
    store.endpoints.set_status("Churn", S.CREATING, S.IN_SERVICE)
    store.endpoints.set_status("Churn", S.IN_SERVICE, S.UPDATING, pending_config_name="config-b")
    assert store.endpoints.get("Churn").pending_config_name == "config-b"
    new_document = {"Desired": {"v": 3}}
    assert store.endpoints.set_status(
        "Churn",
        S.UPDATING,
        S.IN_SERVICE,
        endpoint_config_name="config-b",
        pending_config_name=None,
        document=new_document,
    )
    record = store.endpoints.get("Churn")
    assert record.endpoint_config_name == "config-b"
    assert record.pending_config_name is None
    assert record.document == new_document
    assert record.generation == 4


def test_update_writes_when_the_generation_still_matches(store):
    read = _create(store)
    assert store.endpoints.update(
        "Churn", generation=read.generation, document={"Desired": {"v": 1}}, at=at(3)
    )
    record = store.endpoints.get("Churn")
    assert record.document == {"Desired": {"v": 1}}
    assert record.generation == read.generation + 1
    assert record.last_modified_time == at(3)
    assert record.status is S.CREATING


def test_update_loses_to_any_write_since_the_read(store):
    read = _create(store)
    assert store.endpoints.update("Churn", generation=read.generation, document={"first": 1})
    assert not store.endpoints.update("Churn", generation=read.generation, document={"second": 2})
    assert store.endpoints.get("Churn").document == {"first": 1}
    store.endpoints.set_status("Churn", S.CREATING, S.IN_SERVICE)
    assert not store.endpoints.update("Churn", generation=read.generation + 1, document={})


def test_all_lists_every_endpoint_by_name(store):
    for name in ("b", "A", "c"):
        _create(store, name)
    assert [r.name for r in store.endpoints.all()] == ["A", "b", "c"]


def test_delete_removes_the_endpoint_and_its_tags(store):
    created = _create(store)
    store.tags.add(created.arn, {"team": "risk"})
    assert store.endpoints.delete("churn") is True
    assert store.endpoints.get("Churn") is None
    assert store.tags.list(created.arn, max_results=50).items == ()
    assert store.endpoints.delete("churn") is False
