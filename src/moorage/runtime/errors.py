"""Errors of the handler layer, as a branch of moorage's tree (``moorage.errors``).

    ValidationError
    ├── UnsupportedContentType   no default decoder for the request's Content-Type
    ├── UnsupportedAccept        no default encoder for any type the Accept header lists
    └── BadRequestBody           the body does not parse as its declared type
    LoadError
    └── UserCodeFailed           the script's import, pre_model_fn, model_fn or warmup raised

The handler answers the first three with 500, as the toolkits do (415, 406 and 400 when the
instance sets MOORAGE_HTTP_CLIENT_ERRORS); it never sends the others over HTTP.
"""

from moorage.errors import LoadError, ValidationError


class UnsupportedContentType(ValidationError):
    """The request's Content-Type has no default decoder (or its decoder's library is missing)."""


class UnsupportedAccept(ValidationError):
    """None of the types the Accept header lists has a default encoder."""


class BadRequestBody(ValidationError):
    """The request body does not parse as the type its Content-Type declares."""


class UserCodeFailed(LoadError):
    """User code raised while a model loaded; ``traceback`` holds the full formatted traceback."""

    def __init__(self, message: str, traceback: str) -> None:
        super().__init__(message)
        self.traceback = traceback
