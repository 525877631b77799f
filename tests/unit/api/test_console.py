"""The console's pure parts: who may open it, and what kind of endpoint a snapshot is."""

import pytest

from moorage.api.console import endpoint_kind, refusal
from moorage.config import ConsoleSetting, load_server_config
from moorage.errors import ValidationError


@pytest.mark.parametrize(
    ("setting", "checks_signatures", "is_open"),
    [
        (ConsoleSetting.AUTO, False, True),
        (ConsoleSetting.AUTO, True, False),
        (ConsoleSetting.ON, True, True),
        (ConsoleSetting.OFF, False, False),
    ],
)
def test_the_console_opens_by_default_only_where_no_signatures_are_checked(
    setting, checks_signatures, is_open
):
    assert (refusal(setting, checks_signatures) is None) is is_open


def test_moorage_console_is_read_once_and_a_bad_value_names_the_variable():
    assert load_server_config(env={}).console is ConsoleSetting.AUTO
    assert load_server_config(env={"MOORAGE_CONSOLE": "ON"}).console is ConsoleSetting.ON
    with pytest.raises(ValidationError, match="MOORAGE_CONSOLE='yes' must be on, off or auto"):
        load_server_config(env={"MOORAGE_CONSOLE": "yes"})


def snapshot(variant: dict | None = None, config: dict | None = None, **model) -> dict:
    return {
        "Resolved": {
            "EndpointConfig": {
                "Document": {"ProductionVariants": [variant or {}], **(config or {})}
            },
            "Models": {"m": {"Document": {"PrimaryContainer": {}, **model}}},
        }
    }


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        (snapshot(), "real-time"),
        (snapshot({"ServerlessConfig": {"MemorySizeInMB": 2048}}), "serverless"),
        (snapshot(config={"AsyncInferenceConfig": {"OutputConfig": {}}}), "async"),
        (snapshot(PrimaryContainer={"Mode": "MultiModel"}), "multi-model"),
        (snapshot(Containers=[{}, {}]), "pipeline"),
        ({}, "real-time"),
    ],
)
def test_the_kind_of_an_endpoint_comes_from_its_deployed_snapshot(document, kind):
    assert endpoint_kind(document) == kind
