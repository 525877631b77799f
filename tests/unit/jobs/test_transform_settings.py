"""CreateTransformJob inputs read into settings: rules across members, and which values win."""

import pytest

from moorage.errors import ValidationError
from moorage.jobs.records import BatchStrategy
from moorage.jobs.transform_inputs import relative_key
from moorage.jobs.transform_settings import TransformSettings

MB = 1024 * 1024


def job(**extra):
    document = {
        "TransformJobName": "j",
        "ModelName": "m",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
            **extra.pop("TransformInput", {}),
        },
        "TransformOutput": {"S3OutputPath": "s3://b/out", **extra.pop("TransformOutput", {})},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    return {**document, **extra}


def test_defaults_when_neither_the_job_nor_the_container_says():
    effective = TransformSettings.read(job()).effective(None)
    assert effective.max_concurrent == 1
    assert effective.max_payload_bytes == 6 * MB
    assert effective.strategy is BatchStrategy.MULTI_RECORD


def test_the_containers_execution_parameters_fill_what_the_job_leaves_out():
    answered = {"MaxConcurrentTransforms": 4, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}
    effective = TransformSettings.read(job()).effective(answered)
    assert (effective.max_concurrent, effective.max_payload_bytes) == (4, 2 * MB)
    assert effective.strategy is BatchStrategy.SINGLE_RECORD
    settings = TransformSettings.read(
        job(MaxConcurrentTransforms=2, MaxPayloadInMB=0, BatchStrategy="MultiRecord")
    )
    effective = settings.effective(answered)
    assert (effective.max_concurrent, effective.max_payload_bytes) == (2, None)
    assert effective.strategy is BatchStrategy.MULTI_RECORD


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"MaxPayloadInMB": 101}, "over the limit of 100"),
        ({"MaxPayloadInMB": 10, "MaxConcurrentTransforms": 11}, "must not be over 100"),
        (
            {
                "TransformInput": {"SplitType": "RecordIO"},
                "DataProcessing": {"InputFilter": "$[1]"},
            },
            "SplitType Line or None",
        ),
        ({"DataProcessing": {"InputFilter": "$[1:]"}}, "ContentType"),
        (
            {
                "TransformInput": {"ContentType": "text/csv"},
                "TransformOutput": {"Accept": "application/json"},
                "DataProcessing": {"JoinSource": "Input"},
            },
            "both be CSV",
        ),
        ({"TransformOutput": {"S3OutputPath": "ftp://x"}}, "S3OutputPath"),
    ],
)
def test_settings_moorage_cannot_run_are_refused(extra, message):
    with pytest.raises(ValidationError, match=message):
        TransformSettings.read(job(**extra))


def test_identity_filters_need_no_content_type():
    settings = TransformSettings.read(job(DataProcessing={"InputFilter": "$", "OutputFilter": "$"}))
    assert not settings.processing.filters_input
    assert not settings.processing.processes_output


def test_instances_get_the_batch_variables_under_the_jobs_environment():
    settings = TransformSettings.read(
        job(MaxPayloadInMB=0, BatchStrategy="SingleRecord", Environment={"SAGEMAKER_BATCH": "x"})
    )
    # MaxPayloadInMB 0 (no limit) is not passed on: the variable has no way to say it.
    assert settings.container_environment() == {
        "SAGEMAKER_BATCH": "x",
        "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD",
    }


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("in/", "in/d/x.csv", "d/x.csv"),
        ("in", "in/d/x.csv", "d/x.csv"),
        ("in/x", "in/x.csv", "x.csv"),
        ("in/x.csv", "in/x.csv", "x.csv"),
        ("", "x.csv", "x.csv"),
        ("da", "data/x.csv", "data/x.csv"),
    ],
)
def test_output_keys_are_relative_to_the_input_prefix(prefix, key, relative):
    assert relative_key(prefix, key) == relative
