import base64
import json

import pytest
from store_builders import arn_of, at, create_endpoint

from moorage.domain import EndpointStatus, ResourceKind
from moorage.errors import ValidationError
from moorage.store import ListQuery, SortBy, SortOrder

S = EndpointStatus


def _add_models(store, count=25):
    # Created in an order unlike their names, so sorts by name and by time differ.
    names = [f"model-{(i * 7) % count:02d}" for i in range(count)]
    for i, name in enumerate(names):
        store.models.create(name, arn_of(ResourceKind.MODEL, name), {"ModelName": name}, at(i))
    return names


def _all_pages(listing, query):
    names, token, pages = [], None, 0
    while True:
        page = listing.list(ListQuery(**{**query, "next_token": token}))
        names += [record.name for record in page.items]
        pages += 1
        token = page.next_token
        if token is None:
            return names, pages


def test_default_order_is_newest_first(store):
    names = _add_models(store)
    page = store.models.list(ListQuery(max_results=100))
    assert [r.name for r in page.items] == names[::-1]
    assert page.next_token is None


@pytest.mark.parametrize(
    ("sort_by", "sort_order"),
    [(by, order) for by in (SortBy.NAME, SortBy.CREATION_TIME) for order in SortOrder],
)
def test_pages_of_seven_join_up_to_the_whole_sorted_list(store, sort_by, sort_order):
    names = _add_models(store)
    whole = store.models.list(ListQuery(sort_by=sort_by, sort_order=sort_order, max_results=100))
    paged, pages = _all_pages(
        store.models, {"sort_by": sort_by, "sort_order": sort_order, "max_results": 7}
    )
    assert paged == [r.name for r in whole.items]
    assert sorted(paged) == sorted(names)
    assert pages == 4


def test_sort_by_name_ignores_case(store):
    for i, name in enumerate(["b", "A", "c"]):
        store.models.create(name, arn_of(ResourceKind.MODEL, name), {}, at(i))
    query = ListQuery(sort_by=SortBy.NAME, sort_order=SortOrder.ASCENDING)
    assert [r.name for r in store.models.list(query).items] == ["A", "b", "c"]


def test_last_page_has_no_token_when_items_fill_it_exactly(store):
    _add_models(store, count=10)
    first = store.models.list(ListQuery(max_results=5))
    second = store.models.list(ListQuery(max_results=5, next_token=first.next_token))
    assert len(second.items) == 5
    assert second.next_token is None


def test_pages_neither_repeat_nor_skip_when_items_are_created_in_between(store):
    _add_models(store, count=10)
    query = {"sort_by": SortBy.NAME, "sort_order": SortOrder.ASCENDING, "max_results": 4}
    first = store.models.list(ListQuery(**query))
    store.models.create("model-00a", arn_of(ResourceKind.MODEL, "model-00a"), {}, at(100))
    rest, _ = _all_pages(store.models, {**query, "next_token": None})
    second = store.models.list(ListQuery(**query, next_token=first.next_token))
    assert second.items[0].name == "model-04"
    assert len(rest) == 11


def test_name_contains_ignores_case(store):
    for i, name in enumerate(["Churn-A", "churn-b", "fraud"]):
        store.models.create(name, arn_of(ResourceKind.MODEL, name), {}, at(i))
    page = store.models.list(ListQuery(name_contains="CHURN", sort_by=SortBy.NAME))
    assert sorted(r.name for r in page.items) == ["Churn-A", "churn-b"]


def test_name_contains_matches_percent_and_underscore_literally(store):
    store.models.create("a-b", arn_of(ResourceKind.MODEL, "a-b"), {}, at(0))
    assert store.models.list(ListQuery(name_contains="%")).items == ()
    assert store.models.list(ListQuery(name_contains="_")).items == ()


def test_creation_time_bounds_are_exclusive(store):
    names = _add_models(store, count=10)
    query = ListQuery(
        creation_time_after=at(2), creation_time_before=at(6), sort_order=SortOrder.ASCENDING
    )
    assert [r.name for r in store.models.list(query).items] == names[3:6]


def _add_endpoints(store):
    statuses = [S.CREATING, S.IN_SERVICE, S.FAILED, S.IN_SERVICE, S.CREATING]
    for i, status in enumerate(statuses):
        name = f"ep-{i}"
        create_endpoint(store, name, creation_time=at(i))
        if status is not S.CREATING:
            assert store.endpoints.set_status(name, S.CREATING, status, at=at(100 - i))
    return statuses


def test_endpoints_filter_by_status(store):
    _add_endpoints(store)
    page = store.endpoints.list(ListQuery(status_equals=S.IN_SERVICE))
    assert [r.name for r in page.items] == ["ep-3", "ep-1"]


def test_endpoints_filter_by_last_modified_time(store):
    _add_endpoints(store)
    query = ListQuery(last_modified_after=at(3), last_modified_before=at(99))
    assert sorted(r.name for r in store.endpoints.list(query).items) == ["ep-2", "ep-3", "ep-4"]


def test_endpoints_sort_by_status_then_name_across_pages(store):
    _add_endpoints(store)
    query = {"sort_by": SortBy.STATUS, "sort_order": SortOrder.ASCENDING, "max_results": 2}
    names, _ = _all_pages(store.endpoints, query)
    assert names == ["ep-0", "ep-4", "ep-2", "ep-1", "ep-3"]


def test_status_listing_is_refused_for_models(store):
    with pytest.raises(ValueError, match="status"):
        store.models.list(ListQuery(status_equals=S.IN_SERVICE))
    with pytest.raises(ValueError, match="status"):
        store.models.list(ListQuery(sort_by=SortBy.STATUS))


def test_max_results_below_one_is_refused(store):
    with pytest.raises(ValueError, match="max_results"):
        store.models.list(ListQuery(max_results=0))


@pytest.mark.parametrize(
    "token",
    ["", "not base64!", base64.b64encode(b"\xff\xfe").decode(), base64.b64encode(b"[1]").decode()],
)
def test_a_malformed_token_is_refused(store, token):
    with pytest.raises(ValidationError, match=r"^Invalid pagination token"):
        store.models.list(ListQuery(next_token=token))


def test_a_token_of_another_query_is_refused(store):
    _add_models(store, count=5)
    token = store.models.list(ListQuery(max_results=2)).next_token
    others = [
        ListQuery(max_results=2, next_token=token, sort_by=SortBy.NAME),
        ListQuery(max_results=2, next_token=token, sort_order=SortOrder.ASCENDING),
        ListQuery(max_results=2, next_token=token, name_contains="model"),
        ListQuery(max_results=2, next_token=token, creation_time_after=at(0)),
    ]
    for query in others:
        with pytest.raises(ValidationError, match=r"^Invalid pagination token"):
            store.models.list(query)
    with pytest.raises(ValidationError, match=r"^Invalid pagination token"):
        store.endpoint_configs.list(ListQuery(max_results=2, next_token=token))


def test_a_token_works_with_another_page_size(store):
    _add_models(store, count=5)
    token = store.models.list(ListQuery(max_results=2)).next_token
    assert len(store.models.list(ListQuery(max_results=3, next_token=token)).items) == 3


def test_a_token_with_values_of_the_wrong_type_is_refused(store):
    _add_models(store, count=5)
    token = store.models.list(ListQuery(max_results=2)).next_token
    payload = json.loads(base64.urlsafe_b64decode(token))
    assert isinstance(payload["after"][0], int)
    payload["after"][0] = "1714564800123"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(ValidationError, match=r"^Invalid pagination token"):
        store.models.list(ListQuery(max_results=2, next_token=forged))
