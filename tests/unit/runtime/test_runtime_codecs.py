import io
import json
import sys

import numpy as np
import pytest
import scipy.sparse

from moorage.runtime import codecs
from moorage.runtime.errors import BadRequestBody, UnsupportedAccept, UnsupportedContentType


def _npy(array):
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", ("application/json", None)),
        ("Application/JSON; charset=UTF-8", ("application/json", "utf-8")),
        ('text/csv;header=present; charset="latin-1"', ("text/csv", "latin-1")),
        ("  text/plain ;", ("text/plain", None)),
    ],
)
def test_parse_media_type_strips_parameters_and_folds_case(value, expected):
    assert codecs.parse_media_type(value) == expected


def test_json_decodes_to_an_array_with_or_without_charset():
    expected = np.array([[1, 2], [3, 4]])
    assert np.array_equal(codecs.decode("[[1, 2], [3, 4]]", "application/json"), expected)
    decoded = codecs.decode(b"[[1, 2], [3, 4]]", "application/json; charset=utf-8")
    assert np.array_equal(decoded, expected)


@pytest.mark.parametrize("body", ["{not json", "[[1, 2], [3]]", ""])
def test_json_decode_refuses_a_malformed_body(body):
    with pytest.raises(BadRequestBody, match="not a valid JSON array"):
        codecs.decode(body, "application/json")


def test_json_encodes_numpy_arrays_and_scalars():
    value = {"array": np.arange(3), "f32": np.float32(0.5), "i64": np.int64(7), "plain": [1.5]}
    assert json.loads(codecs.encode(value, "application/json")) == {
        "array": [0, 1, 2],
        "f32": 0.5,
        "i64": 7,
        "plain": [1.5],
    }
    assert codecs.encode(np.array([[1, 2]]), "application/json") == b"[[1, 2]]"


def test_json_encode_refuses_an_object_with_no_list_form():
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        codecs.encode(object(), "application/json")


def test_csv_round_trips_rows():
    decoded = codecs.decode("1,2,3\n4,5,6\n", "text/csv")
    assert np.array_equal(decoded, np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert codecs.encode(np.array([[1, 2], [3, 4]]), "text/csv") == b"1,2\n3,4\n"


def test_csv_decode_reads_the_charset_parameter():
    decoded = codecs.decode("1,2".encode("utf-16"), "text/csv; charset=utf-16")
    assert np.array_equal(decoded, np.array([1.0, 2.0]))


@pytest.mark.parametrize("body", ["", "  \n"])
def test_csv_decode_refuses_an_empty_body(body):
    with pytest.raises(BadRequestBody, match="empty"):
        codecs.decode(body, "text/csv")


def test_csv_decode_refuses_ragged_rows():
    with pytest.raises(BadRequestBody, match="not valid CSV"):
        codecs.decode("1,2\n3\n", "text/csv")


def test_npy_round_trips_an_array():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    decoded = codecs.decode(_npy(array), "application/x-npy")
    assert decoded.dtype == np.float32
    assert np.array_equal(decoded, array)
    assert np.array_equal(np.load(io.BytesIO(codecs.encode(array, "application/x-npy"))), array)


def test_npy_decode_refuses_pickled_object_arrays():
    with pytest.raises(BadRequestBody, match="object arrays are refused"):
        codecs.decode(_npy(np.array([{"a": 1}], dtype=object)), "application/x-npy")


@pytest.mark.parametrize("body", [b"", b"not an array", b"\x93NUMPY\x01\x00"])
def test_npy_decode_refuses_a_malformed_body(body):
    with pytest.raises(BadRequestBody, match=r"not a valid \.npy"):
        codecs.decode(body, "application/x-npy")


def test_npy_decode_refuses_an_npz_archive():
    stream = io.BytesIO()
    np.savez(stream, a=np.arange(2))
    with pytest.raises(BadRequestBody, match="npz archive"):
        codecs.decode(stream.getvalue(), "application/x-npy")


def test_npz_decodes_a_scipy_sparse_matrix():
    matrix = scipy.sparse.csr_matrix(np.array([[0, 1], [2, 0]]))
    stream = io.BytesIO()
    scipy.sparse.save_npz(stream, matrix)
    decoded = codecs.decode(stream.getvalue(), "application/x-npz")
    assert np.array_equal(decoded.toarray(), matrix.toarray())


def test_npz_decode_refuses_a_malformed_body():
    with pytest.raises(BadRequestBody, match=r"scipy\.sparse"):
        codecs.decode(b"PK not a zip", "application/x-npz")


def test_npz_decode_without_scipy_is_unsupported(monkeypatch):
    # A None entry makes the import fail as if scipy were not installed.
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(UnsupportedContentType, match=r"needs scipy.*moorage\[sparse\]"):
        codecs.decode(b"", "application/x-npz")


def test_npz_has_no_encoder():
    with pytest.raises(UnsupportedAccept):
        codecs.encode(np.arange(2), "application/x-npz")


def test_text_plain_has_no_codec_as_in_the_toolkit():
    with pytest.raises(UnsupportedContentType):
        codecs.decode(b"plain", "text/plain")
    with pytest.raises(UnsupportedAccept):
        codecs.encode("plain", "text/plain")


def test_text_decode_refuses_bytes_invalid_in_its_charset():
    with pytest.raises(BadRequestBody, match="not valid utf-8 text"):
        codecs.decode(b"\xff\xfe", "text/csv")


def test_decode_names_the_supported_types_for_an_unknown_one():
    with pytest.raises(UnsupportedContentType) as caught:
        codecs.decode(b"x", "application/octet-stream")
    assert str(caught.value).startswith(
        "Content type application/octet-stream is not supported by this framework. "
        "The default input_fn decodes application/json, text/csv"
    )


def test_encode_refuses_an_unknown_type():
    with pytest.raises(UnsupportedAccept, match="type image/png is not supported"):
        codecs.encode(b"x", "image/png")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/csv", "text/csv"),
        ("image/png, text/csv;q=0.9, application/json", "text/csv"),
        ("image/png,*/*", "application/json"),
        ("*/*;q=0.1", "application/json"),
        ("Application/X-NPY", "application/x-npy"),
    ],
)
def test_select_accept_takes_the_first_supported_entry(accept, expected):
    assert codecs.select_accept(accept, "application/json") == expected


def test_select_accept_refuses_a_list_with_nothing_supported():
    with pytest.raises(UnsupportedAccept, match="type image/png, audio/wav is not supported"):
        codecs.select_accept("image/png, audio/wav", "application/json")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/vnd.mine", "application/vnd.mine"),
        ("text/csv; q=0.5, application/json", "text/csv"),
        ("*/*, text/csv", "text/plain"),
    ],
)
def test_first_accept_labels_with_the_first_entry(accept, expected):
    assert codecs.first_accept(accept, "text/plain") == expected


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", "[1]"),
        ("text/csv; charset=utf-8", "[1]"),
        ("application/x-npy", b"[1]"),
        ("application/json-seq", b"[1]"),
    ],
)
def test_prepare_input_gives_str_for_json_and_csv_only(content_type, expected):
    assert codecs.prepare_input(b"[1]", content_type) == expected


def test_multi_model_decoding_makes_one_row_a_batch_of_float32():
    from moorage.runtime.codecs import decode_rows

    row = decode_rows("1,2,3", "text/csv")
    assert row.shape == (1, 3)
    assert row.dtype == np.float32
    assert decode_rows("[[1, 2], [3, 4]]", "application/json").shape == (2, 2)
    assert decode_rows("[1, 2]", "application/json").dtype == np.float32
