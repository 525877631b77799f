"""InputFilter, JoinSource and OutputFilter as SageMaker's documentation shows them."""

import pytest

from moorage.errors import ValidationError
from moorage.jobs.data_processing import (
    DataFormat,
    DataProcessing,
    JsonPathFilter,
    ProcessingError,
    data_format,
)

CSV, JSON, JSONL = DataFormat.CSV, DataFormat.JSON, DataFormat.JSON_LINES


@pytest.mark.parametrize(
    ("path", "value", "selected"),
    [
        ("$", [1, 2], [1, 2]),
        ("$[1:]", ["id", "a", "b"], ["a", "b"]),
        ("$[0,5:]", list(range(8)), [0, 5, 6, 7]),
        ("$[0,-1]", [1, 2, 3], [1, 3]),
        ("$[-1]", [1, 2, 3], 3),
        ("$[*]", [1, 2], [1, 2]),
        ("$.features", {"id": 1, "features": [1, 2]}, [1, 2]),
        ("$.a.b", {"a": {"b": 7}}, 7),
        (
            "$['id','SageMakerOutput']",
            {"id": 1, "x": 2, "SageMakerOutput": 3},
            {"id": 1, "SageMakerOutput": 3},
        ),
    ],
)
def test_paths_select_as_sagemaker_documents(path, value, selected):
    assert JsonPathFilter(path).select(value) == selected


def test_a_path_that_selects_nothing_fails_the_record():
    with pytest.raises(ProcessingError, match="selects nothing"):
        JsonPathFilter("$.missing").select({"id": 1})


def test_a_path_that_does_not_parse_is_refused_naming_the_member():
    with pytest.raises(ValidationError, match="InputFilter"):
        JsonPathFilter("$[[", "InputFilter")


def test_formats_are_read_from_mime_types():
    assert data_format("text/csv; charset=utf-8") is CSV
    assert data_format("application/jsonlines") is JSONL
    assert data_format("application/x-npy") is None
    assert data_format(None) is None


def test_input_filter_applies_to_each_csv_row():
    processing = DataProcessing(input_filter=JsonPathFilter("$[1:]"), input_format=CSV)
    assert processing.filter_input(b'7,5.1,"a,b"\n8,6.2,c') == b'5.1,"a,b"\n6.2,c'


def test_input_filter_applies_to_a_whole_json_document():
    processing = DataProcessing(
        input_filter=JsonPathFilter("$.features"), input_format=JSON, is_whole_json=True
    )
    assert processing.filter_input(b'{\n "id": 1,\n "features": [1, 2]\n}') == b"[1,2]"


def test_csv_join_puts_the_output_columns_after_the_input_columns():
    processing = DataProcessing(join_input=True, input_format=CSV, output_format=CSV)
    assert processing.process_output([b"1,2,3", b"4,5,6"], b"1\n0\n") == [b"1,2,3,1", b"4,5,6,0"]


def test_output_filter_selects_from_the_joined_record():
    processing = DataProcessing(
        join_input=True,
        output_filter=JsonPathFilter("$[0,-1]"),
        input_format=CSV,
        output_format=CSV,
    )
    assert processing.process_output([b"id7,5.1,3.5"], b"2") == [b"id7,2"]


def test_json_join_adds_sagemaker_output_or_wraps_non_objects():
    processing = DataProcessing(join_input=True, input_format=JSONL, output_format=JSONL)
    joined = processing.process_output([b'{"id": 1}', b"[2, 3]"], b"[0.5, 0.7]")
    assert joined == [
        b'{"id":1,"SageMakerOutput":0.5}',
        b'{"SageMakerInput":[2,3],"SageMakerOutput":0.7}',
    ]


def test_json_output_filter_keeps_named_members():
    processing = DataProcessing(
        join_input=True,
        output_filter=JsonPathFilter("$['id','SageMakerOutput']"),
        input_format=JSONL,
        output_format=JSONL,
    )
    assert processing.process_output([b'{"id": 1, "f": [1]}'], b'{"p": 1}') == [
        b'{"id":1,"SageMakerOutput":{"p":1}}'
    ]


def test_an_answer_with_another_number_of_records_fails_the_object():
    processing = DataProcessing(join_input=True, input_format=CSV, output_format=CSV)
    with pytest.raises(ProcessingError, match="2 records for 3 input records"):
        processing.process_output([b"1", b"2", b"3"], b"0\n1")
