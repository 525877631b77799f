"""InvokeEndpointAsync (spec/API.md §6.2): check the request, queue it, answer 202.

The request names its input (``InputLocation``) or carries it (``Body``, up to 128,000 bytes);
the answer names where the result and a failure will be written. The work happens later, in
``jobs``.
"""

import asyncio
import json
import re
from typing import Final

from moorage.api.errors import request_id, runtime_error
from moorage.api.runtime import is_print_id
from moorage.contract import ACCEPT, CONTENT_TYPE, CUSTOM_ATTRIBUTES, INFERENCE_ID
from moorage.http import Request, Response
from moorage.jobs import AsyncInference, AsyncRequest
from moorage.jobs.objects import input_problem
from moorage.routing import EndpointRoute, RoutingTable

_PREFIX: Final = "x-amzn-sagemaker-"
# Request header → the header the instance gets (spec/CONTAINER.md §4).
_RELAYED: Final = {
    f"{_PREFIX}content-type": CONTENT_TYPE,
    f"{_PREFIX}accept": ACCEPT,
    CUSTOM_ATTRIBUTES: CUSTOM_ATTRIBUTES,
    INFERENCE_ID: INFERENCE_ID,
}
_EXTENSION: Final = re.compile(r"(?!s3:|https:)[a-zA-Z0-9!_.*'()/-]{1,512}")
_FILENAME: Final = re.compile(r"(?!.*\..*\.)[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}")
# Not str.isdigit(), which takes '²' (int() refuses it) and any number of digits (int() refuses
# over 4300).
_WHOLE: Final = re.compile(r"[0-9]{1,9}")
# (member, lowest, highest, default) of the numeric members; the header is the member's name.
_TTL: Final = ("RequestTTLSeconds", 60, 21600, 21600)
_TIMEOUT: Final = ("InvocationTimeoutSeconds", 1, 3600, 900)
_MAX_INLINE_BODY: Final = 128_000  # AsyncBodyBlob's max (botocore's sagemaker-runtime model)
_MAX_LOCATION: Final = 1024  # InputLocationHeader's max (the same model)


class AsyncRuntimeApi:
    def __init__(self, table: RoutingTable, queue: AsyncInference, *, account: str) -> None:
        self._table = table
        self._queue = queue
        self._account = account

    def invoke(self, request: Request, endpoint: str) -> "Response | asyncio.Future[Response]":
        route = self._table.get(endpoint)
        if route is None:
            return _invalid(f"Endpoint {endpoint} of account {self._account} not found.")
        if route.asynchronous is None:
            return _invalid(
                f"Endpoint {route.name} is not an asynchronous endpoint (its config has no "
                "AsyncInferenceConfig); call InvokeEndpoint."
            )
        parsed = _parse(request.headers, request.body)
        if isinstance(parsed, str):
            return _invalid(parsed)
        return asyncio.ensure_future(self._accept(route, parsed))

    async def _accept(self, route: EndpointRoute, request: AsyncRequest) -> Response:
        accepted = await asyncio.to_thread(self._queue.submit, route, request)
        self._queue.wake()
        return Response(
            202,
            json.dumps({"InferenceId": accepted.inference_id}).encode(),
            [
                ("Content-Type", "application/json"),
                ("X-Amzn-SageMaker-OutputLocation", accepted.output_location),
                ("X-Amzn-SageMaker-FailureLocation", accepted.failure_location),
                ("x-amzn-RequestId", request_id()),
            ],
        )


def _parse(headers: dict[str, str], body: bytes) -> AsyncRequest | str:
    """The checked request, or what is wrong with it."""
    location = headers.get(f"{_PREFIX}inputlocation") or None
    if (location is None) == (not body):
        return (
            "Provide exactly one of InputLocation (the S3 URI, or local file, of the request's "
            "body) and Body (the request's body inline)."
        )
    if len(body) > _MAX_INLINE_BODY:
        return (
            f"Body is {len(body)} bytes; an inline body is at most {_MAX_INLINE_BODY}. "
            "Upload larger ones and pass InputLocation."
        )
    if location is not None and len(location) > _MAX_LOCATION:
        return f"InputLocation is {len(location)} characters; it may have at most {_MAX_LOCATION}."
    if location is not None and (problem := input_problem(location)):
        return problem
    for name in _RELAYED:
        value = headers.get(name)
        if value is not None and (len(value) > 1024 or not value.isascii()):
            return f"Header {name} must be at most 1024 ASCII characters."
    inference_id = headers.get(INFERENCE_ID)
    if inference_id is not None and not is_print_id(inference_id):
        return "InferenceId must be 1 to 64 printable ASCII characters, not starting with a space."
    extension = headers.get(f"{_PREFIX}s3outputpathextension")
    if extension is not None and (
        not _EXTENSION.fullmatch(extension) or ".." in extension.split("/")
    ):
        return (
            f"S3OutputPathExtension {extension!r} must be 1 to 512 characters of "
            "a-z A-Z 0-9 ! _ . * ' ( ) / -, relative, without '..'."
        )
    filename = headers.get(f"{_PREFIX}filename")
    if filename is not None and not _FILENAME.fullmatch(filename):
        return (
            f"Filename {filename!r} must be 1 to 32 characters of a-z A-Z 0-9 - _ ., start with "
            "a letter or digit, and hold at most one dot."
        )
    numbers: list[int] = []
    for member, lowest, highest, default in (_TTL, _TIMEOUT):
        text = headers.get(f"{_PREFIX}{member.lower()}")
        if text is None:
            numbers.append(default)
        elif not _WHOLE.fullmatch(text) or not lowest <= int(text) <= highest:
            return f"{member} must be a whole number from {lowest} to {highest}."
        else:
            numbers.append(int(text))
    relayed = [(to, headers[name]) for name, to in _RELAYED.items() if name in headers]
    return AsyncRequest(
        input_location=location,
        body=bytes(body) if location is None else None,
        headers=relayed,
        inference_id=inference_id,
        output_extension=extension,
        filename=filename,
        ttl_s=numbers[0],
        timeout_s=numbers[1],
    )


def _invalid(message: str) -> Response:
    return runtime_error(400, "ValidationError", message)
