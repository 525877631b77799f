"""One inference request and its answer, as a worker's handler sees them."""

from dataclasses import dataclass, field

from moorage.contract import ACCEPT, CONTENT_TYPE


@dataclass(slots=True)
class InferenceRequest:
    """``headers`` maps lower-cased header names to values, as received from the client.

    A large ``body`` is a bytearray, read in place, or a view of the front's shared memory;
    ``codecs.prepare_input`` hands user code str or bytes.
    """

    body: bytes | bytearray | memoryview
    headers: dict[str, str] = field(default_factory=dict)
    model_name: str | None = None

    @property
    def content_type(self) -> str | None:
        return self.headers.get(CONTENT_TYPE)

    @property
    def accept(self) -> str | None:
        return self.headers.get(ACCEPT)


@dataclass(slots=True)
class InferenceResponse:
    """``headers`` holds extra response headers (e.g. custom attributes), never Content-Type."""

    status: int
    body: bytes
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
