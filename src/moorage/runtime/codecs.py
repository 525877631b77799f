"""The default decoders and encoders of the inference toolkits (spec/TOOLKIT.md §5, GEN flavour).

Media types are matched on their essence: parameters are stripped and case is folded, so
``application/json; charset=utf-8`` is JSON here. The toolkits compare exact strings and would
reject it; moorage accepts it on purpose, since that is what HTTP means. The set of types is the
toolkit's, though: no ``text/plain`` codec, so a script that relies on one fails here as it would
on SageMaker.
"""

import io
import json
import zipfile
from collections.abc import Callable
from functools import cache, lru_cache
from types import ModuleType
from typing import Any, Final, NamedTuple

from moorage.runtime.errors import BadRequestBody, UnsupportedAccept, UnsupportedContentType


@cache
def _np() -> ModuleType:
    """numpy, imported on first use: a model that brings its own codecs never pays for it."""
    import numpy

    return numpy


JSON: Final = "application/json"
CSV: Final = "text/csv"
NPY: Final = "application/x-npy"
NPZ: Final = "application/x-npz"
ANY: Final = "*/*"

# Bodies of these types reach a user's input_fn as str, all others as bytes (GEN's UTF8_TYPES).
TEXT_INPUT_TYPES: Final = frozenset({JSON, CSV})


class MediaType(NamedTuple):
    """A Content-Type value split into its lower-cased essence and its charset parameter."""

    essence: str
    charset: str | None


# Header values come from clients, so the caches are bounded; real traffic repeats a handful.
@lru_cache(maxsize=256)
def parse_media_type(value: str) -> MediaType:
    """Split ``value`` (e.g. ``text/csv; charset=latin-1``) into essence and charset."""
    essence, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, raw = param.partition("=")
        if key.strip().lower() == "charset":
            charset = raw.strip().strip('"').lower() or None
    return MediaType(essence.strip().lower(), charset)


def prepare_input(body: bytes | bytearray | memoryview, content_type: str) -> str | bytes:
    """The body as a user's ``input_fn`` receives it: str for JSON and CSV, bytes otherwise.

    A large body arrives as a bytearray (read in place) or a view of shared memory; text is
    decoded from it directly.
    """
    media = parse_media_type(content_type)
    if media.essence not in TEXT_INPUT_TYPES:
        return body if isinstance(body, bytes) else bytes(body)
    return _text(body, media)


def _text(body: str | bytes | bytearray | memoryview, media: MediaType) -> str:
    if isinstance(body, str):
        return body
    charset = media.charset or "utf-8"
    try:
        return str(body, charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise BadRequestBody(
            f"Request body is not valid {charset} text for content type '{media.essence}': {exc}"
        ) from exc


def _bytes(body: str | bytes) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _decode_json(body: str | bytes, media: MediaType) -> Any:
    try:
        return _np().array(json.loads(_text(body, media)))
    except ValueError as exc:  # JSONDecodeError, and numpy's ragged-nesting error
        raise BadRequestBody(f"Request body is not a valid JSON array: {exc}") from exc


def _decode_csv(body: str | bytes, media: MediaType) -> Any:
    text = _text(body, media)
    # genfromtxt only warns on empty input and returns an empty array; a request with no rows
    # is a client mistake, so say so instead.
    if not text.strip():
        raise BadRequestBody("Request body is empty; text/csv needs at least one row")
    try:
        return _np().genfromtxt(io.StringIO(text), delimiter=",")
    except ValueError as exc:  # rows with different column counts
        raise BadRequestBody(f"Request body is not valid CSV: {exc}") from exc


def _decode_npy(body: str | bytes, media: MediaType) -> Any:
    try:
        # allow_pickle=False: the toolkits allow it, but unpickling a request runs its code.
        array = _np().load(io.BytesIO(_bytes(body)), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadRequestBody(
            f"Request body is not a valid .npy array (object arrays are refused): {exc}"
        ) from exc
    if not isinstance(array, _np().ndarray):  # np.load also opens .npz archives
        raise BadRequestBody("Request body is a .npz archive, not a .npy array")
    return array


def _decode_npz(body: str | bytes, media: MediaType) -> Any:
    try:
        # Imported here: optional, and slow to import for the one type that needs it.
        import scipy.sparse
    except ImportError as exc:
        raise UnsupportedContentType(
            "Content type 'application/x-npz' needs scipy, which is not installed in this "
            "instance; install moorage[sparse] or add scipy to code/requirements.txt"
        ) from exc
    try:
        return scipy.sparse.load_npz(io.BytesIO(_bytes(body)))
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise BadRequestBody(
            f"Request body is not a scipy.sparse .npz matrix (save_npz): {exc}"
        ) from exc


def _json_default(value: Any) -> Any:
    # numpy arrays and scalars (np.float32, np.int64 are not float/int subclasses), and anything
    # else array-like (tensors, pandas) the way GEN's encoder does it.
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> bytes:
    """JSON-encode ``value``, turning numpy arrays and scalars into lists and numbers."""
    return json.dumps(value, default=_json_default).encode()


def _encode_csv(value: Any) -> bytes:
    stream = io.StringIO()
    _np().savetxt(stream, value, delimiter=",", fmt="%s")
    return stream.getvalue().encode()


def _encode_npy(value: Any) -> bytes:
    stream = io.BytesIO()
    _np().save(stream, value)
    return stream.getvalue()


_DECODERS: Final[dict[str, Callable[[str | bytes, MediaType], Any]]] = {
    JSON: _decode_json,
    CSV: _decode_csv,
    NPY: _decode_npy,
    NPZ: _decode_npz,
}
_ENCODERS: Final[dict[str, Callable[[Any], bytes]]] = {
    JSON: encode_json,
    CSV: _encode_csv,
    NPY: _encode_npy,
}
DECODABLE: Final = tuple(_DECODERS)
ENCODABLE: Final = tuple(_ENCODERS)


def decode(body: str | bytes, content_type: str) -> Any:
    """Decode a request body by its Content-Type, as the default ``input_fn`` does.

    Raises UnsupportedContentType for a type with no decoder, BadRequestBody for a body that
    does not parse.
    """
    media = parse_media_type(content_type)
    decoder = _DECODERS.get(media.essence)
    if decoder is None:
        raise UnsupportedContentType(
            f"{_unsupported(content_type)} The default input_fn decodes {', '.join(DECODABLE)}; "
            "define input_fn in inference.py for other types."
        )
    return decoder(body, media)


def decode_rows(body: str | bytes, content_type: str) -> Any:
    """``decode``, as the multi-model default ``input_fn`` does (spec/TOOLKIT.md §4): a 1-D
    array becomes one row, and JSON and CSV become float32, so that one CSV line is a batch of
    one for ``model.predict``."""
    data = decode(body, content_type)
    np = _np()
    if isinstance(data, np.ndarray):
        if data.ndim == 1:
            data = data.reshape(1, -1)
        if parse_media_type(content_type).essence in TEXT_INPUT_TYPES and data.dtype.kind in "biuf":
            data = data.astype(np.float32)
    return data


def encode(value: Any, media_type: str) -> bytes:
    """Encode a prediction as ``media_type`` (one of ENCODABLE), as the default ``output_fn`` does.

    Raises UnsupportedAccept for a type with no encoder.
    """
    encoder = _ENCODERS.get(parse_media_type(media_type).essence)
    if encoder is None:
        raise _unsupported_accept(media_type)
    return encoder(value)


@lru_cache(maxsize=256)
def select_accept(accept: str, default_accept: str) -> str:
    """The first type in ``accept`` that has an encoder; ``*/*`` stands for ``default_accept``.

    Entries are split on commas with parameters (``;q=``) dropped and no q-value ordering, as
    the toolkits do. Raises UnsupportedAccept when no entry is supported.
    """
    for entry in accept.split(","):
        essence = parse_media_type(entry).essence
        if essence == ANY:
            essence = parse_media_type(default_accept).essence
        if essence in _ENCODERS:
            return essence
    raise _unsupported_accept(accept)


def _unsupported_accept(accept: str) -> UnsupportedAccept:
    return UnsupportedAccept(
        f"{_unsupported(accept)} The default output_fn encodes {', '.join(ENCODABLE)}; "
        "define output_fn in inference.py for other types."
    )


def _unsupported(media_type: str) -> str:
    # The first sentence of the toolkit's UnsupportedFormatError, word for word, for the
    # Accept value as for the Content-Type: clients and their tests match on it.
    return f"Content type {media_type} is not supported by this framework."


@lru_cache(maxsize=256)
def first_accept(accept: str, default_accept: str) -> str:
    """The type a response is labelled with when user code gave none: Accept's first entry."""
    if "," not in accept and ";" not in accept:
        return accept
    essence = parse_media_type(accept.split(",", 1)[0]).essence
    return default_accept if essence in (ANY, "") else essence
