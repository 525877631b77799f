import pytest

from moorage.store import open_store


@pytest.fixture
def store(tmp_path):
    with open_store(f"sqlite:///{tmp_path / 'moorage.db'}") as opened:
        yield opened
