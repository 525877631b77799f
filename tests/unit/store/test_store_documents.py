from datetime import datetime

import pytest
from store_builders import T0, arn_of, at

from moorage.domain import ResourceKind
from moorage.errors import Conflict
from moorage.store import AlreadyExists, EndpointConfigRecord, ModelRecord

_MODEL = {"ModelName": "Churn", "PrimaryContainer": {"ModelDataUrl": "s3://b/m.tar.gz"}}


def test_model_create_then_get_returns_what_was_stored(store):
    created = store.models.create("Churn", arn_of(ResourceKind.MODEL, "Churn"), _MODEL, T0)
    got = store.models.get("Churn")
    assert isinstance(got, ModelRecord)
    assert got == created
    assert got.name == "Churn"
    assert got.arn.endswith(":model/churn")
    assert got.document == _MODEL
    assert got.creation_time == T0


def test_get_ignores_case_and_keeps_the_name_as_created(store):
    store.models.create("Churn", arn_of(ResourceKind.MODEL, "Churn"), _MODEL, T0)
    for spelling in ("churn", "CHURN", "cHuRn"):
        record = store.models.get(spelling)
        assert record is not None
        assert record.name == "Churn"


def test_get_returns_none_for_a_missing_model(store):
    assert store.models.get("nope") is None


def test_create_refuses_a_name_taken_in_another_case(store):
    store.models.create("Churn", arn_of(ResourceKind.MODEL, "Churn"), _MODEL, T0)
    with pytest.raises(AlreadyExists) as caught:
        store.models.create("CHURN", arn_of(ResourceKind.MODEL, "CHURN"), _MODEL, at(1))
    assert isinstance(caught.value, Conflict)
    assert str(caught.value) == (
        'Cannot create already existing model "arn:aws:sagemaker:us-east-1:000000000000:'
        'model/churn".'
    )
    assert store.models.get("churn").creation_time == T0


def test_times_round_trip_to_the_millisecond(store):
    created = datetime.fromisoformat("2024-05-01T12:00:00.987654+00:00")
    store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, created)
    assert store.models.get("m").creation_time == datetime.fromisoformat(
        "2024-05-01T12:00:00.987+00:00"
    )


def test_times_from_other_zones_come_back_in_utc(store):
    created = datetime.fromisoformat("2024-05-01T14:00:00.5+02:00")
    store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, created)
    stored = store.models.get("m").creation_time
    assert stored == created
    assert stored.utcoffset().total_seconds() == 0


def test_create_refuses_a_naive_time(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, datetime(2024, 1, 1))


def test_changing_a_returned_document_changes_nothing_stored(store):
    record = store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, T0)
    store.models.get("m").document["PrimaryContainer"]["ModelDataUrl"] = "changed"
    record.document["ModelName"] = "changed"
    assert store.models.get("m").document == _MODEL


def test_delete_removes_the_model_once(store):
    store.models.create("Churn", arn_of(ResourceKind.MODEL, "Churn"), _MODEL, T0)
    assert store.models.delete("CHURN") is True
    assert store.models.get("Churn") is None
    assert store.models.delete("Churn") is False


def test_a_deleted_name_can_be_created_again(store):
    store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, T0)
    store.models.delete("m")
    again = store.models.create("m", arn_of(ResourceKind.MODEL, "m"), {"ModelName": "m"}, at(5))
    assert store.models.get("m") == again


def test_delete_removes_the_resources_tags_only(store):
    model_arn = arn_of(ResourceKind.MODEL, "m")
    other_arn = arn_of(ResourceKind.MODEL, "other")
    store.models.create("m", model_arn, _MODEL, T0)
    store.tags.add(model_arn, {"team": "risk"})
    store.tags.add(other_arn, {"team": "growth"})
    store.models.delete("m")
    assert store.tags.list(model_arn, max_results=50).items == ()
    assert len(store.tags.list(other_arn, max_results=50).items) == 1


def test_endpoint_configs_are_stored_apart_from_models(store):
    document = {"EndpointConfigName": "m", "ProductionVariants": [{"VariantName": "v"}]}
    config_arn = arn_of(ResourceKind.ENDPOINT_CONFIG, "m")
    store.models.create("m", arn_of(ResourceKind.MODEL, "m"), _MODEL, T0)
    created = store.endpoint_configs.create("m", config_arn, document, at(1))
    assert isinstance(created, EndpointConfigRecord)
    assert store.endpoint_configs.get("M") == created
    with pytest.raises(AlreadyExists, match='endpoint configuration "arn:'):
        store.endpoint_configs.create("M", config_arn, document, at(2))
    assert store.endpoint_configs.delete("m") is True
    assert store.models.get("m") is not None
