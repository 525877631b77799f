import pytest

_PREFIXES = ("MOORAGE_", "SAGEMAKER_", "AWS_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    """Tests start from no moorage, SageMaker or AWS configuration of the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
