import io
import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from moorage.errors import LoadError
from moorage.runtime.errors import UserCodeFailed
from moorage.runtime.handlers import Handler
from moorage.runtime.messages import InferenceRequest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "models"
XOR_INPUT = [[0, 0], [0, 1], [1, 0], [1, 1]]
XOR_OUTPUT = [0, 1, 1, 0]


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch):
    """Each test's scripts and the code dirs they put on sys.path go away after it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if name.startswith(("_moorage_user_", "moorage_fixture_")) or origin.startswith(
            str(FIXTURES)
        ):
            del sys.modules[name]


@pytest.fixture(scope="module")
def xor_model_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("xor")
    model = DecisionTreeClassifier(random_state=0).fit(np.array(XOR_INPUT), XOR_OUTPUT)
    joblib.dump(model, model_dir / "model.joblib")
    return model_dir


def load(fixture, model_dir=None, program=None, **options):
    code_dir = FIXTURES / fixture / "code"
    return Handler.load(model_dir or FIXTURES / fixture, code_dir, program, **options)


def request(body=b"", content_type=None, accept=None, **headers):
    if content_type is not None:
        headers["content-type"] = content_type
    if accept is not None:
        headers["accept"] = accept
    return InferenceRequest(body, {name.replace("_", "-"): v for name, v in headers.items()})


def npy(array):
    stream = io.BytesIO()
    np.save(stream, np.asarray(array))
    return stream.getvalue()


# Loading


def test_load_runs_pre_model_fn_model_fn_and_warmup_in_order():
    handler = load("context_variants", model_name="churn")
    model_dir = str(FIXTURES / "context_variants")
    assert handler.model["calls"] == [
        ("pre_model_fn", model_dir),
        ("model_fn", model_dir),
        ("model_warmup_fn", "churn"),
    ]
    assert handler.model["properties"]["model_dir"] == model_dir
    assert handler.model["properties"]["batch_size"] == 1


def test_load_refuses_a_function_with_the_wrong_parameter_count():
    with pytest.raises(LoadError) as caught:
        load("bad_signature")
    message = str(caught.value)
    assert "input_fn(input_data, content_type, context, extra)" in message
    assert "takes 4 parameters; expected input_fn(input_data, content_type)" in message


def test_load_refuses_transform_fn_with_input_fn():
    with pytest.raises(LoadError, match="defines transform_fn and input_fn"):
        load("transform_conflict")


def test_load_reports_the_last_traceback_line_when_model_fn_raises():
    with pytest.raises(UserCodeFailed) as caught:
        load("model_fn_raises")
    assert str(caught.value).endswith("ValueError: bad weights")
    assert str(caught.value).startswith("model_fn failed")
    assert "Traceback (most recent call last)" in caught.value.traceback
    assert "_read_weights" in caught.value.traceback


def test_load_reports_an_import_error_in_the_script():
    with pytest.raises(UserCodeFailed) as caught:
        load("broken_import")
    assert "Importing" in str(caught.value)
    assert str(caught.value).endswith(
        "ModuleNotFoundError: No module named 'moorage_fixture_module_that_does_not_exist'"
    )
    assert not any(name.startswith("_moorage_user_") for name in sys.modules)


def test_load_requires_model_fn():
    with pytest.raises(LoadError, match=r"inference\.py does not define it.*no default model_fn"):
        load("no_model_fn")


def test_load_without_a_script_has_no_model_fn(tmp_path):
    with pytest.raises(LoadError, match=r"inference\.py is absent"):
        Handler.load(tmp_path, tmp_path / "code", None)


@pytest.mark.parametrize("program", ["serve.py", "serve"])
def test_load_imports_the_named_program(program):
    handler = load("custom_program", program=program)
    response = handler.invoke(request(b"[1, 2]", "application/json"))
    assert (response.status, response.body) == (200, b"[10, 20]")


def test_load_refuses_a_named_program_that_is_missing():
    with pytest.raises(LoadError) as caught:
        load("custom_program", program="predict.py")
    assert str(caught.value) == (
        f"SAGEMAKER_PROGRAM 'predict.py' not found in {FIXTURES / 'custom_program' / 'code'}"
    )


def test_load_refuses_a_model_it_cannot_predict_with(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return 42\n")
    with pytest.raises(LoadError, match="returned a int, which has no predict method"):
        Handler.load(tmp_path, code, None)


def test_load_puts_extra_paths_on_sys_path_for_the_script(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "moorage_fixture_shared.py").write_text("FACTOR = 3\n")
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "from moorage_fixture_shared import FACTOR\n\n\n"
        "def model_fn(model_dir):\n    return lambda data: data * FACTOR\n"
    )
    handler = Handler.load(tmp_path, code, None, extra_sys_path=[shared])
    assert handler.invoke(request(b"[1]")).body == b"[3]"


def test_load_imports_a_program_that_is_a_package(tmp_path):
    package = tmp_path / "code" / "serving"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .model import model_fn  # noqa: F401\n")
    (package / "model.py").write_text("def model_fn(model_dir):\n    return len\n")
    handler = Handler.load(tmp_path, tmp_path / "code", "serving")
    assert handler.invoke(request(b"[1, 2]")).body == b"2"


def test_two_models_with_the_same_script_name_stay_apart(tmp_path):
    first = load("remember_dir", model_dir=tmp_path / "a")
    second = load("remember_dir", model_dir=tmp_path / "b")
    other = load("all_four")
    assert first.invoke(request()).body == str(tmp_path / "a").encode()
    assert second.invoke(request()).body == str(tmp_path / "b").encode()
    assert other.invoke(request(b"{}")).status == 200


# Default functions on a scikit-learn model


def test_defaults_serve_a_sklearn_model_in_json(xor_model_dir):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(json.dumps(XOR_INPUT).encode(), "application/json"))
    assert response.status == 200
    assert response.content_type == "application/json"
    assert json.loads(response.body) == XOR_OUTPUT


def test_defaults_take_a_request_without_content_type_as_json(xor_model_dir):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(json.dumps(XOR_INPUT).encode()))
    assert (response.status, json.loads(response.body)) == (200, XOR_OUTPUT)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps(XOR_INPUT).encode(), "application/json; charset=utf-8"),
        (b"0,0\n0,1\n1,0\n1,1\n", "text/csv"),
        (npy(XOR_INPUT), "application/x-npy"),
    ],
)
@pytest.mark.parametrize(
    ("accept", "decode"),
    [
        ("application/json", json.loads),
        ("text/csv", lambda body: [int(line) for line in body.decode().split()]),
        ("application/x-npy", lambda body: np.load(io.BytesIO(body)).tolist()),
    ],
)
def test_defaults_read_and_write_every_built_in_type(
    xor_model_dir, body, content_type, accept, decode
):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(body, content_type, accept))
    assert (response.status, response.content_type) == (200, accept)
    assert decode(response.body) == XOR_OUTPUT


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/png, text/csv;q=0.5", "text/csv"),
        ("*/*", "application/x-npy"),
        (None, "application/x-npy"),
        ("image/png, */*", "application/x-npy"),
    ],
)
def test_defaults_answer_in_the_first_supported_accept_type(xor_model_dir, accept, expected):
    handler = load("sklearn_default", xor_model_dir, default_accept="application/x-npy")
    response = handler.invoke(request(b"[[0, 1]]", "application/json", accept))
    assert (response.status, response.content_type) == (200, expected)


def test_defaults_answer_500_for_an_unsupported_accept_as_the_toolkit(xor_model_dir):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(b"[[0, 1]]", "application/json", "image/png"))
    assert response.status == 500
    assert response.content_type == "text/plain; charset=utf-8"
    assert response.body.startswith(b"Content type image/png is not supported by this framework.")


def test_defaults_answer_500_for_an_unsupported_content_type_as_the_toolkit(xor_model_dir):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(b"\x00", "application/octet-stream"))
    assert response.status == 500
    assert response.body.decode().startswith(
        "Content type application/octet-stream is not supported by this framework. "
        "The default input_fn decodes application/json, text/csv, application/x-npy, "
        "application/x-npz;"
    )


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        (b"\x00", "application/octet-stream", None, 415),
        (b"[[0, 1]]", "application/json", "image/png", 406),
        (b"[[0, 1", "application/json", None, 400),
    ],
)
def test_defaults_answer_client_errors_when_asked(
    xor_model_dir, body, content_type, accept, status
):
    handler = load("sklearn_default", xor_model_dir, http_client_errors=True)
    assert handler.invoke(request(body, content_type, accept)).status == status


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[[0, 1]", "application/json"),
        (b"\xff[]", "application/json"),
        (b"xx", "application/x-npy"),
    ],
)
def test_defaults_answer_500_for_a_malformed_body_as_the_toolkit(xor_model_dir, body, content_type):
    handler = load("sklearn_default", xor_model_dir)
    response = handler.invoke(request(body, content_type))
    assert response.status == 500
    assert response.body.startswith(b"Request body")


def test_default_predict_calls_a_callable_model():
    handler = load("custom_program", program="serve.py")
    assert handler.invoke(request(b"3,4", "text/csv", "text/csv")).body == b"30.0\n40.0\n"


# User functions


def test_all_four_functions_see_the_body_as_str_for_json_and_bytes_otherwise():
    handler = load("all_four")
    as_json = json.loads(handler.invoke(request(b'{"a": 1}', "application/json")).body)
    assert as_json == {
        "input": "str:'{\"a\": 1}'",
        "content_type": "application/json",
        "scale": 2,
        "accept": "application/json",
    }
    as_bytes = handler.invoke(request(b"\x01", "application/octet-stream", "text/csv"))
    assert as_bytes.content_type == "application/vnd.echo+json"
    assert json.loads(as_bytes.body)["input"] == "bytes:b'\\x01'"
    assert json.loads(as_bytes.body)["accept"] == "text/csv"


def test_user_input_fn_receives_the_default_content_type_when_none_was_sent():
    handler = load("all_four")
    answer = json.loads(handler.invoke(request(b"{}")).body)
    assert answer["content_type"] == "application/json"


def test_transform_fn_sets_custom_attributes_and_content_type_through_the_context():
    handler = load("transform_context")
    response = handler.invoke(
        request(b"x,y", "text/csv", x_amzn_sagemaker_custom_attributes="trace=1")
    )
    assert response.status == 200
    assert response.body == b"model:x,y"
    assert response.content_type == "text/plain"
    assert response.headers == [("x-amzn-sagemaker-custom-attributes", "seen=trace=1")]
    # The next request starts clean: nothing set by the last one leaks into it.
    assert handler.invoke(request(b"z")).headers == [
        ("x-amzn-sagemaker-custom-attributes", "seen=None")
    ]


def test_context_is_passed_to_a_defaulted_context_parameter():
    handler = load("context_variants")
    response = handler.invoke(
        request(b"[1]", "application/json", x_amzn_sagemaker_inference_id="req-7")
    )
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"has_context": True, "body": "[1]", "request_id": "req-7"}


def test_output_labelled_by_the_first_accept_entry_when_user_code_gives_no_type():
    handler = load("passthrough")
    response = handler.invoke(request(b"a,b", "text/csv", "text/csv;q=1, application/json"))
    assert (response.body, response.content_type) == (b"a,b", "text/csv")
    default = handler.invoke(request(b"{}", "application/json", "*/*"))
    assert default.content_type == "application/json"


# Return values and errors from user code


def errors_invoke(action, handler=None):
    handler = handler or load("errors")
    return handler.invoke(request(json.dumps({"action": action}).encode(), "application/json"))


def test_user_exception_answers_500_with_message_and_traceback():
    response = errors_invoke("raise")
    assert response.status == 500
    assert response.content_type == "text/plain; charset=utf-8"
    text = response.body.decode()
    assert text.startswith("boom\nTraceback (most recent call last):")
    assert 'raise ValueError("boom")' in text


def test_exception_with_status_code_answers_that_status():
    response = errors_invoke("toolkit_error")
    assert response.status == 422
    assert response.body.decode().startswith("field 'x' is missing\nTraceback")


def test_exception_with_a_non_error_status_code_answers_500():
    response = errors_invoke("bogus_status")
    assert response.status == 500
    assert response.body.startswith(b"(200, 'not an error status', '')\nTraceback")


@pytest.mark.parametrize(
    ("action", "first_line"), [("exit", "SystemExit: 3"), ("interrupt", "KeyboardInterrupt")]
)
def test_exit_and_interrupt_from_user_code_answer_500(action, first_line):
    response = errors_invoke(action)
    assert response.status == 500
    assert response.body.decode().splitlines()[0] == first_line


def test_status_set_through_the_context_is_answered():
    handler = load("errors")
    response = errors_invoke("status", handler)
    assert (response.status, response.body) == (429, b"try later")
    assert errors_invoke("echo", handler).status == 200


def test_error_response_drops_headers_set_before_the_error():
    response = errors_invoke("header_then_raise")
    assert (response.status, response.headers) == (500, [])


@pytest.mark.parametrize(
    ("action", "message"),
    [("bad_header", b"not a valid header line"), ("server_header", b"set by the server")],
)
def test_headers_that_would_corrupt_the_response_answer_500(action, message):
    response = errors_invoke(action)
    assert response.status == 500
    assert message in response.body


def test_generator_body_answers_500_naming_the_limit():
    response = errors_invoke("generator")
    assert response.status == 500
    assert b"streaming responses are not supported" in response.body


@pytest.mark.parametrize(
    ("action", "body", "content_type"),
    [
        ("dict", b'{"answer": 42}', "application/json"),
        ("none", b"", "application/json"),
        ("bytearray", b"raw", "application/json"),
        ("tuple_body", b"body", "application/x-thing"),
    ],
)
def test_return_values_become_bodies(action, body, content_type):
    response = errors_invoke(action)
    assert (response.status, response.body, response.content_type) == (200, body, content_type)
