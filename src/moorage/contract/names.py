"""Environment variables, headers and limits of the container contract (spec/CONTAINER.md)."""

from enum import StrEnum
from typing import Final


class Env(StrEnum):
    """Variables a SageMaker platform or user sets for an inference container."""

    BASE_DIR = "SAGEMAKER_BASE_DIR"
    BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"
    SAFE_PORT_RANGE = "SAGEMAKER_SAFE_PORT_RANGE"
    PROGRAM = "SAGEMAKER_PROGRAM"
    SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
    MULTI_MODEL = "SAGEMAKER_MULTI_MODEL"
    MODEL_SERVER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
    MODEL_SERVER_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
    MODEL_SERVER_TIMEOUT_SECONDS = "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS"
    DEFAULT_INVOCATIONS_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
    MAX_PAYLOAD_IN_MB = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
    CONTAINER_LOG_LEVEL = "SAGEMAKER_CONTAINER_LOG_LEVEL"
    REGION = "SAGEMAKER_REGION"


# Header names, lower-cased as they are compared on the wire.
CONTENT_TYPE: Final = "content-type"
ACCEPT: Final = "accept"
CUSTOM_ATTRIBUTES: Final = "x-amzn-sagemaker-custom-attributes"
TARGET_MODEL: Final = "x-amzn-sagemaker-target-model"
INFERENCE_ID: Final = "x-amzn-sagemaker-inference-id"
SESSION_ID: Final = "x-amzn-sagemaker-session-id"
NEW_SESSION_ID: Final = "x-amzn-sagemaker-new-session-id"
CLOSED_SESSION_ID: Final = "x-amzn-sagemaker-closed-session-id"

FORWARDED_REQUEST_HEADERS: Final = frozenset(
    {CONTENT_TYPE, ACCEPT, CUSTOM_ATTRIBUTES, TARGET_MODEL, INFERENCE_ID, SESSION_ID}
)
RELAYED_RESPONSE_HEADERS: Final = frozenset(
    {CONTENT_TYPE, CUSTOM_ATTRIBUTES, NEW_SESSION_ID, CLOSED_SESSION_ID}
)

DEFAULT_ACCEPT: Final = "application/json"
# InvokeEndpoint's BodyBlob maximum: 6 MB.
MAX_PAYLOAD_BYTES: Final = 6 * 1024 * 1024
