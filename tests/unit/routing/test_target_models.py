"""TargetModel checks and resolution against a multi-model prefix."""

import pytest

from moorage.errors import ValidationError
from moorage.routing import ModelPrefix, TargetChecker, model_key, target_problem


@pytest.mark.parametrize(
    "target", ["model.tar.gz", "a/b/c.tar.gz", "with space.tar.gz", "v1.2/m-é.tar.gz", "x" * 1024]
)
def test_acceptable_targets(target):
    assert target_problem(target) is None


@pytest.mark.parametrize(
    "target",
    ["", "x" * 1025, " lead", "\tm", "a\nb", "/abs.tar.gz", "a\\b", "../up", "a/../b", "a//b",
     "./m", "dir/"],
)  # fmt: skip
def test_refused_targets(target):
    assert target_problem(target) is not None


@pytest.mark.parametrize(
    ("prefix", "resolved"),
    [
        ("s3://bucket/models", "s3://bucket/models/a/m.tar.gz"),
        ("s3://bucket/models/", "s3://bucket/models/a/m.tar.gz"),
        ("s3://bucket/", "s3://bucket/a/m.tar.gz"),
        ("/srv/models/", "/srv/models/a/m.tar.gz"),
        ("file:///srv/models", "file:///srv/models/a/m.tar.gz"),
        ("file:///srv/my%20models/", "file:///srv/my%20models/a/m.tar.gz"),
    ],
)
def test_resolve(prefix, resolved):
    assert ModelPrefix(prefix).resolve("a/m.tar.gz") == resolved


def test_model_key_is_short_stable_and_distinct():
    assert model_key("a.tar.gz") == model_key("a.tar.gz")
    assert model_key("a.tar.gz") != model_key("b.tar.gz")
    assert len(model_key("x" * 1024)) == 32


def test_missing_local_target_says_where_it_looked(tmp_path):
    (tmp_path / "here.tar.gz").write_bytes(b"")
    checker = TargetChecker()
    checker.check(ModelPrefix(str(tmp_path)), "here.tar.gz")
    with pytest.raises(ValidationError, match="Failed to find model data"):
        checker.check(ModelPrefix(tmp_path.as_uri()), "gone.tar.gz")
