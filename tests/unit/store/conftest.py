import pytest

from moorage.store import open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The URL of a fresh database, once on each engine the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'moorage.db'}"
    return request.getfixturevalue("postgresql_url")


@pytest.fixture
def store(store_url):
    with open_store(store_url) as opened:
        yield opened
