"""The SageMaker container contract, shared by the server and the instance runtime.

``names``: environment variables, paths, headers and limits of spec/CONTAINER.md.
``frames``: the private framing spoken to the built-in runtime's workers, by its front and,
for invocations, by the server.
"""

from moorage.contract.names import (
    ACCEPT,
    CLOSED_SESSION_ID,
    CONTENT_TYPE,
    CUSTOM_ATTRIBUTES,
    DEFAULT_ACCEPT,
    FORWARDED_REQUEST_HEADERS,
    INFERENCE_ID,
    MAX_PAYLOAD_BYTES,
    NEW_SESSION_ID,
    RELAYED_RESPONSE_HEADERS,
    SESSION_ID,
    TARGET_MODEL,
    Env,
)

__all__ = [
    "ACCEPT",
    "CLOSED_SESSION_ID",
    "CONTENT_TYPE",
    "CUSTOM_ATTRIBUTES",
    "DEFAULT_ACCEPT",
    "FORWARDED_REQUEST_HEADERS",
    "INFERENCE_ID",
    "MAX_PAYLOAD_BYTES",
    "NEW_SESSION_ID",
    "RELAYED_RESPONSE_HEADERS",
    "SESSION_ID",
    "TARGET_MODEL",
    "Env",
]
