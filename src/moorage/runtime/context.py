"""The ``context`` argument handler functions may take, shaped like MMS's and TorchServe's.

Scripts written for the SageMaker toolkits reach into it as ``context.system_properties``,
``context.request_processor[0].get_request_properties()``, ``context.get_request_header(0, name)``,
``context.set_response_header(0, name, value)`` and ``context.set_response_status(code)``
(spec/TOOLKIT.md §2); this module offers those members and their MMS-era aliases. A worker
serves one request at a time, so ``idx`` is always 0 (``batch_size`` is 1) and any other index
raises IndexError. ``context.metrics`` is not provided.

One Context lives as long as its model in a worker; the handler resets its per-request part
before each request, which costs a few attribute stores and no allocation.
"""

import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import moorage
from moorage.contract import CONTENT_TYPE, INFERENCE_ID

# The server frames the body and owns these; letting user code set them would corrupt the
# response (a second Content-Length) rather than change it.
_SERVER_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_NO_HEADERS: dict[str, str] = {}


class RequestHeaders(Mapping[str, str]):
    """A read-only view of the request's headers whose lookups ignore case.

    MMS hands scripts the headers under the client's own spelling, so scripts look up both
    ``Content-Type`` and ``content-type``; both work here.
    """

    __slots__ = ("_headers",)

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def __getitem__(self, name: str) -> str:
        return self._headers[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"RequestHeaders({self._headers!r})"


class RequestProcessor:
    """One request's headers, and the status and headers user code sets for its response."""

    __slots__ = (
        "_reason_phrase",
        "_request_headers",
        "_request_id",
        "_response_headers",
        "_status_code",
    )

    _request_headers: dict[str, str]
    _status_code: int
    _reason_phrase: str
    _response_headers: dict[str, str] | None
    _request_id: str | None

    def __init__(self) -> None:
        self._begin(_NO_HEADERS)

    def _begin(self, headers: dict[str, str]) -> None:
        # Called by the handler before each request. The response-header dict is created only
        # when a script sets a header, which most never do.
        self._request_headers = headers
        self._status_code = 200
        self._reason_phrase = ""
        self._response_headers = None
        self._request_id: str | None = None

    def get_request_property(self, name: str) -> str | None:
        """The value of request header ``name`` (any case), or None."""
        return self._request_headers.get(name.lower())

    def get_request_properties(self) -> RequestHeaders:
        """All request headers, as a mapping whose lookups ignore case."""
        return RequestHeaders(self._request_headers)

    def report_status(self, code: int, reason_phrase: str | None = None) -> None:
        """Answer this request with HTTP status ``code`` (100-599) instead of 200.

        The reason phrase is kept for ``get_response_status_phrase`` but not sent: moorage's
        responses carry the standard phrase for the code.
        """
        if type(code) is not int or not 100 <= code <= 599:
            raise ValueError(f"response status must be an int from 100 to 599, got {code!r}")
        self._status_code = code
        self._reason_phrase = reason_phrase or ""

    def get_response_status_code(self) -> int:
        """The status this request will be answered with (200 unless set)."""
        return self._status_code

    def get_response_status_phrase(self) -> str:
        """The reason phrase last given to ``report_status``, or an empty string."""
        return self._reason_phrase

    def add_response_property(self, name: str, value: str) -> None:
        """Send header ``name: value`` with the response; ``content-type`` sets the body's type.

        Names are case-insensitive (stored lower-cased); a later call for the same name
        replaces the value. Content-Length, Transfer-Encoding and Connection belong to the
        server and raise ValueError, as does a name or value with a line break.
        """
        name = name.lower()
        value = str(value)
        if name in _SERVER_HEADERS:
            raise ValueError(f"response header {name!r} is set by the server, not by user code")
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value or not name:
            raise ValueError(f"response header {name!r}: {value!r} is not a valid header line")
        if self._response_headers is None:
            self._response_headers = {}
        self._response_headers[name] = value

    def get_response_headers(self) -> dict[str, str]:
        """The response headers set so far, keyed by lower-cased name."""
        if self._response_headers is None:
            self._response_headers = {}
        return self._response_headers

    def get_response_header(self, name: str) -> str | None:
        """The response header ``name`` set so far, or None."""
        return None if self._response_headers is None else self._response_headers.get(name.lower())

    def get_request_id(self) -> str:
        """SageMaker's inference id for this request when the client sent one, else a fresh one."""
        if self._request_id is None:
            self._request_id = self._request_headers.get(INFERENCE_ID) or uuid.uuid4().hex
        return self._request_id

    def _take_response_headers(self) -> tuple[str | None, list[tuple[str, str]]]:
        """Split what user code set into (content type, other headers), for the response."""
        headers = self._response_headers
        if not headers:
            return None, []
        content_type = None
        extra = []
        # Scripts may have written into get_response_headers()'s dict directly, in any case.
        for name, value in headers.items():
            if name.lower() == CONTENT_TYPE:
                content_type = value
            else:
                extra.append((name.lower(), value))
        return content_type, extra


class Context:
    """What a handler function receives as its trailing ``context`` argument.

    ``system_properties``: ``model_dir`` (str), ``gpu_id`` (the GPU index this worker was given,
    None on CPU, as TorchServe does; MMS passes an int), ``batch_size`` (1), ``server_name``
    ("moorage"), ``server_version``. ``manifest`` is a minimal MMS-style manifest. During
    ``model_fn`` no request is active: header lookups return None.
    """

    __slots__ = ("_system_properties", "manifest", "model_name", "request_processor")

    def __init__(
        self, model_name: str, model_dir: Path, *, handler: str, gpu_id: int | None = None
    ) -> None:
        self.model_name = model_name
        self.manifest: dict[str, Any] = {
            "model": {"modelName": model_name, "handler": handler, "modelVersion": "1.0"}
        }
        self._system_properties: dict[str, Any] = {
            "model_dir": str(model_dir),
            "gpu_id": gpu_id,
            "batch_size": 1,
            "server_name": "moorage",
            "server_version": moorage.__version__,
        }
        self.request_processor = [RequestProcessor()]

    @property
    def system_properties(self) -> dict[str, Any]:
        """``model_dir``, ``gpu_id``, ``batch_size``, ``server_name``, ``server_version``."""
        return self._system_properties

    def get_request_id(self, idx: int = 0) -> str:
        """The request's SageMaker inference id, or a generated one when it has none."""
        return self.request_processor[idx].get_request_id()

    def get_request_header(self, idx: int, name: str) -> str | None:
        """The value of request header ``name`` (any case), or None."""
        return self.request_processor[idx].get_request_property(name)

    def get_all_request_header(self, idx: int) -> RequestHeaders:
        """All request headers, as a mapping whose lookups ignore case."""
        return self.request_processor[idx].get_request_properties()

    def set_response_header(self, idx: int, name: str, value: str) -> None:
        """Send ``name: value`` with the response, e.g. X-Amzn-SageMaker-Custom-Attributes."""
        self.request_processor[idx].add_response_property(name, value)

    def get_response_headers(self, idx: int) -> dict[str, str]:
        """The response headers set so far, keyed by lower-cased name."""
        return self.request_processor[idx].get_response_headers()

    def set_response_content_type(self, idx: int, value: str) -> None:
        """Label the response body with ``value``; a ``(body, type)`` return still wins."""
        self.request_processor[idx].add_response_property(CONTENT_TYPE, value)

    def get_response_content_type(self, idx: int) -> str | None:
        """The content type set with ``set_response_content_type``, or None."""
        return self.request_processor[idx].get_response_header(CONTENT_TYPE)

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        """Answer with HTTP status ``code`` and the body the handler returns."""
        self.request_processor[idx].report_status(code, phrase)

    def get_response_status(self, idx: int) -> tuple[int, str]:
        """The (code, phrase) set so far; (200, "") by default."""
        processor = self.request_processor[idx]
        return processor.get_response_status_code(), processor.get_response_status_phrase()

    # MMS 1.x spelled these with "http"; older scripts still call them.
    set_http_response_status = set_response_status
    get_http_response_status = get_response_status
