import pytest
from store_builders import arn_of

from moorage.domain import ResourceKind
from moorage.errors import ValidationError
from moorage.store import Tag

ARN = arn_of(ResourceKind.MODEL, "m")


def test_tags_come_back_in_key_order(store):
    store.tags.add(ARN, {"b": "2", "a": "1", "c": ""})
    page = store.tags.list(ARN, max_results=50)
    assert page.items == (Tag(key="a", value="1"), Tag(key="b", value="2"), Tag(key="c", value=""))
    assert page.next_token is None


def test_add_overwrites_values_by_key_and_keeps_the_others(store):
    store.tags.add(ARN, {"a": "1", "b": "2"})
    store.tags.add(ARN, {"b": "two", "c": "3"})
    assert {t.key: t.value for t in store.tags.list(ARN, max_results=50).items} == {
        "a": "1",
        "b": "two",
        "c": "3",
    }


def test_keys_are_case_sensitive_and_arns_are_not(store):
    store.tags.add(ARN, {"Team": "x", "team": "y"})
    assert len(store.tags.list(ARN.upper(), max_results=50).items) == 2


def test_tags_page_with_next_token(store):
    store.tags.add(ARN, {f"k{i:03d}": str(i) for i in range(120)})
    keys, token = [], None
    while True:
        page = store.tags.list(ARN, max_results=50, next_token=token)
        keys += [t.key for t in page.items]
        token = page.next_token
        if token is None:
            break
    assert keys == [f"k{i:03d}" for i in range(120)]


def test_a_token_of_another_resource_is_refused(store):
    store.tags.add(ARN, {f"k{i}": "v" for i in range(3)})
    token = store.tags.list(ARN, max_results=2).next_token
    other = arn_of(ResourceKind.ENDPOINT, "m")
    with pytest.raises(ValidationError, match=r"^Invalid pagination token"):
        store.tags.list(other, max_results=2, next_token=token)


def test_delete_removes_the_named_keys_and_ignores_missing_ones(store):
    store.tags.add(ARN, {"a": "1", "b": "2", "c": "3"})
    store.tags.delete(ARN, ["a", "c", "zzz"])
    assert store.tags.list(ARN, max_results=50).items == (Tag(key="b", value="2"),)


def test_delete_all_removes_only_that_resources_tags(store):
    other = arn_of(ResourceKind.MODEL, "other")
    store.tags.add(ARN, {"a": "1"})
    store.tags.add(other, {"a": "1"})
    store.tags.delete_all(ARN)
    assert store.tags.list(ARN, max_results=50).items == ()
    assert len(store.tags.list(other, max_results=50).items) == 1


def test_adding_no_tags_is_a_no_op(store):
    store.tags.add(ARN, {})
    assert store.tags.list(ARN, max_results=50).items == ()
