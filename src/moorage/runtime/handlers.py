"""Loads a user's ``inference.py`` and turns one request into one response (spec/TOOLKIT.md).

GEN semantics (sagemaker-inference-toolkit), resolved once at load rather than per request:
which functions the script defines, which take ``context``, and the default ``predict_fn``.
Where moorage differs from GEN, the docstrings below say so.
"""

import importlib
import importlib.util
import inspect
import itertools
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final, NamedTuple

from moorage.contract import ACCEPT, CONTENT_TYPE, DEFAULT_ACCEPT
from moorage.errors import LoadError
from moorage.runtime import torch_defaults
from moorage.runtime.codecs import (
    ANY,
    JSON,
    decode,
    decode_rows,
    encode,
    encode_json,
    first_accept,
    prepare_input,
    select_accept,
)
from moorage.runtime.context import Context
from moorage.runtime.errors import (
    BadRequestBody,
    UnsupportedAccept,
    UnsupportedContentType,
    UserCodeFailed,
)
from moorage.runtime.messages import InferenceRequest, InferenceResponse

logger = logging.getLogger(__name__)

DEFAULT_PROGRAM: Final = "inference.py"
# What a request without Content-Type is taken to be. SK's legacy server does the same; GEN
# passes None. It matters: the SageMaker SDK v3 sends no Content-Type by default.
DEFAULT_CONTENT_TYPE: Final = JSON
ERROR_CONTENT_TYPE: Final = "text/plain; charset=utf-8"

# Parameters each function takes before the optional trailing context (TOOLKIT.md §2).
_PARAMETERS: Final = {
    "pre_model_fn": ("model_dir",),
    "model_fn": ("model_dir",),
    "model_warmup_fn": ("model_dir", "model"),
    "input_fn": ("input_data", "content_type"),
    "predict_fn": ("data", "model"),
    "output_fn": ("prediction", "accept"),
    "transform_fn": ("model", "input_data", "content_type", "accept"),
}
# Statuses for what the default input_fn / output_fn cannot handle, sent only when the instance
# opts in (MOORAGE_HTTP_CLIENT_ERRORS). The toolkits answer all three with 500 (TOOLKIT.md §6), and
# that is the default: clients written against SageMaker branch on OriginalStatusCode.
_CLIENT_ERRORS: Final = (
    (UnsupportedContentType, 415),
    (UnsupportedAccept, 406),
    (BadRequestBody, 400),
)
# User code may call sys.exit() or raise KeyboardInterrupt; neither may take the worker down.
_USER_FAILURES: Final = (Exception, SystemExit, KeyboardInterrupt)

# Each load gets its own module, so two models' inference.py never share globals.
_MODULE_PREFIX: Final = "_moorage_user_"
_module_ids = itertools.count(1)


class _Function(NamedTuple):
    call: Callable[..., Any]
    takes_context: bool


class Handler:
    """One loaded model and its handler functions, ready to serve requests one at a time."""

    __slots__ = (
        "_context",
        "_default_accept",
        "_http_client_errors",
        "_input",
        "_input_context",
        "_model",
        "_output",
        "_output_context",
        "_predict",
        "_predict_context",
        "_processor",
        "_transform",
        "_transform_context",
    )

    def __init__(
        self,
        model: Any,
        context: Context,
        functions: dict[str, _Function],
        *,
        default_accept: str,
        http_client_errors: bool = False,
        multi_model: bool = False,
    ) -> None:
        """Use ``Handler.load``; this only wires up what it resolved."""
        self._model = model
        self._http_client_errors = http_client_errors
        self._context = context
        self._processor = context.request_processor[0]
        self._default_accept = default_accept
        transform = functions.get("transform_fn")
        self._transform = None if transform is None else transform.call
        self._transform_context = transform is not None and transform.takes_context
        # A torch module gets the PyTorch images' defaults (tensors in, lists out).
        torch = torch_defaults.torch_for(model)
        default_input = decode_rows if multi_model else decode
        self._input, self._input_context = functions.get("input_fn") or _Function(
            default_input if torch is None else torch_defaults.input_fn(torch, model), False
        )
        predict = functions.get("predict_fn")
        if predict is None:
            predict = (
                _default_predict(model, functions)
                if torch is None
                else _Function(torch_defaults.predict_fn(torch, model), False)
            )
        self._predict, self._predict_context = predict
        output: Callable[[Any, str], tuple[bytes, str]] = self._default_output
        if torch is not None:
            output = torch_defaults.output_fn(torch, output)
        self._output, self._output_context = functions.get("output_fn") or _Function(output, False)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        code_dir: Path | None,
        program: str | None,
        *,
        default_accept: str = DEFAULT_ACCEPT,
        model_name: str | None = None,
        extra_sys_path: Sequence[Path] = (),
        gpu_id: int | None = None,
        http_client_errors: bool = False,
    ) -> "Handler":
        """Import the script, then run ``pre_model_fn``, ``model_fn`` and ``model_warmup_fn``.

        ``program`` is ``SAGEMAKER_PROGRAM`` (None: ``inference.py``, and a missing script
        means every function is a default, as in GEN; named but missing is an error).
        ``code_dir`` and ``extra_sys_path`` are put at the front of ``sys.path`` so the script's
        sibling modules import. ``model_name`` is given for a model of a multi-model instance,
        whose default input_fn makes a 1-D body one row. ``http_client_errors``: answer 415 /
        406 / 400 when the default functions cannot handle a request, instead of the toolkits'
        500.
        Raises LoadError (UserCodeFailed when user code raised).
        """
        paths = [code_dir, *extra_sys_path] if code_dir is not None else [*extra_sys_path]
        for path in reversed(paths):
            if str(path) not in sys.path:
                sys.path.insert(0, str(path))
        importlib.invalidate_caches()  # the code dir may have been unpacked after start-up
        script, module = _import_script(code_dir, program)
        functions = _resolve_functions(module, script)
        context = Context(
            model_name or model_dir.name, model_dir, handler=script.name, gpu_id=gpu_id
        )
        model_fn = functions.get("model_fn")
        if model_fn is None:
            where = f"{script} does not define it" if module is not None else f"{script} is absent"
            raise LoadError(
                f"No model_fn: {where}, and there is no default model_fn (as in the SageMaker "
                "inference toolkit). Define model_fn(model_dir) returning the model."
            )
        pre_model_fn = functions.get("pre_model_fn")
        if pre_model_fn is not None:
            _run_at_load("pre_model_fn", pre_model_fn, (str(model_dir),), context)
        model = _run_at_load("model_fn", model_fn, (str(model_dir),), context)
        warmup_fn = functions.get("model_warmup_fn")
        if warmup_fn is not None:
            _run_at_load("model_warmup_fn", warmup_fn, (str(model_dir), model), context)
        logger.info(
            "Loaded model %s from %s; user functions: %s",
            context.model_name,
            script,
            ", ".join(functions) or "none",
        )
        return cls(
            model,
            context,
            functions,
            default_accept=default_accept,
            http_client_errors=http_client_errors,
            multi_model=model_name is not None,
        )

    @property
    def model(self) -> Any:
        """What ``model_fn`` returned."""
        return self._model

    @property
    def context(self) -> Context:
        """The context handed to functions that take one; reset for each request."""
        return self._context

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        """Run the handler functions on one request; user errors become error responses.

        The body the functions return may be bytes, str (sent UTF-8 encoded), None (empty), or
        ``(body, content_type)`` where the second item is a str. Any other body is JSON-encoded
        and labelled ``application/json`` unless a content type was given; iterators and
        generators are refused (no streaming). Without a tuple type the response is labelled
        with the type set through ``context.set_response_content_type``, else the Accept header's
        first entry (absent or ``*/*``: the default accept).

        Status: the one user code set through the context (200 by default); the exception's
        ``status_code`` (400-599) when it has one, as sagemaker_inference's errors do; else 500,
        also when the default input_fn or output_fn cannot handle the types or the body (415 /
        406 / 400 instead with ``http_client_errors``). Error bodies are text: the exception's
        message, then the traceback (GEN's format).
        """
        processor = self._processor
        headers = request.headers
        processor._begin(headers)
        content_type = headers.get(CONTENT_TYPE) or DEFAULT_CONTENT_TYPE
        accept = headers.get(ACCEPT)
        if not accept or accept == ANY:
            accept = self._default_accept
        try:
            body = prepare_input(request.body, content_type)
            model = self._model
            if self._transform is not None:
                if self._transform_context:
                    result = self._transform(model, body, content_type, accept, self._context)
                else:
                    result = self._transform(model, body, content_type, accept)
            else:
                if self._input_context:
                    data = self._input(body, content_type, self._context)
                else:
                    data = self._input(body, content_type)
                if self._predict_context:
                    prediction = self._predict(data, model, self._context)
                else:
                    prediction = self._predict(data, model)
                if self._output_context:
                    result = self._output(prediction, accept, self._context)
                else:
                    result = self._output(prediction, accept)
            return self._respond(result, accept)
        except _USER_FAILURES as exc:
            return _error_response(exc, self._http_client_errors)

    def _respond(self, result: Any, accept: str) -> InferenceResponse:
        content_type = None
        if type(result) is tuple and len(result) == 2 and isinstance(result[1], str):
            result, content_type = result
        implied_type = None
        if type(result) is bytes:
            body = result
        elif type(result) is str:
            body = result.encode()
        else:
            body, implied_type = _to_body(result)
        set_type, headers = self._processor._take_response_headers()
        if content_type is None:
            content_type = set_type or implied_type or first_accept(accept, self._default_accept)
        return InferenceResponse(self._processor._status_code, body, content_type, headers)

    def _default_output(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        media_type = select_accept(accept, self._default_accept)
        return encode(prediction, media_type), media_type


def _import_script(code_dir: Path | None, program: str | None) -> tuple[Path, ModuleType | None]:
    """The script's path and its freshly imported module (None: no script, all defaults)."""
    stem = (program or DEFAULT_PROGRAM).removesuffix(".py")
    if code_dir is None:
        if program is not None:
            raise LoadError(f"SAGEMAKER_PROGRAM '{program}' not found: the model has no code dir")
        return Path(DEFAULT_PROGRAM), None
    script = code_dir / f"{stem}.py"
    search_locations = None
    if not script.is_file():
        # GEN imports the program by module name, so a package code/<name>/ works too.
        package = code_dir / stem / "__init__.py"
        if package.is_file():
            script, search_locations = package, [str(package.parent)]
        elif program is not None:
            raise LoadError(f"SAGEMAKER_PROGRAM '{program}' not found in {code_dir}")
        else:
            return script, None
    name = f"{_MODULE_PREFIX}{next(_module_ids)}_{stem}"
    spec = importlib.util.spec_from_file_location(
        name, script, submodule_search_locations=search_locations
    )
    if spec is None or spec.loader is None:
        raise LoadError(f"{script} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as a normal import does: dataclasses and pickle look the
    # module up by name while it executes.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except _USER_FAILURES as exc:
        del sys.modules[name]
        raise _user_code_failed(f"Importing {script} failed", exc) from exc
    return script, module


def _resolve_functions(module: ModuleType | None, script: Path) -> dict[str, _Function]:
    functions: dict[str, _Function] = {}
    if module is None:
        return functions
    for name, parameters in _PARAMETERS.items():
        function = getattr(module, name, None)
        if function is None:
            continue
        if not callable(function):
            raise LoadError(f"{name} in {script} is a {type(function).__name__}, not a function")
        functions[name] = _Function(function, _takes_context(name, function, parameters, script))
    if "transform_fn" in functions:
        clashing = sorted(functions.keys() & {"input_fn", "predict_fn", "output_fn"})
        if clashing:
            raise LoadError(
                f"{script} defines transform_fn and {', '.join(clashing)}; transform_fn replaces "
                "input_fn, predict_fn and output_fn, so define either it or them"
            )
    return functions


def _takes_context(
    name: str, function: Callable[..., Any], parameters: tuple[str, ...], script: Path
) -> bool:
    """Whether ``function`` takes a trailing context, counting parameters exactly as GEN does.

    Defaults count: ``def input_fn(data, content_type, context=None)`` receives the context.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise LoadError(f"{name} in {script}: its signature cannot be read ({exc})") from exc
    count = len(signature.parameters)
    if count == len(parameters):
        return False
    if count == len(parameters) + 1:
        return True
    expected = ", ".join(parameters)
    raise LoadError(
        f"{name}{signature} in {script} takes {count} parameters; expected {name}({expected}) "
        f"or {name}({expected}, context)"
    )


def _run_at_load(name: str, function: _Function, args: tuple[Any, ...], context: Context) -> Any:
    try:
        if function.takes_context:
            return function.call(*args, context)
        return function.call(*args)
    except _USER_FAILURES as exc:
        raise _user_code_failed(f"{name} failed", exc) from exc


def _user_code_failed(what: str, exc: BaseException) -> UserCodeFailed:
    # The message ends with the traceback's last line ("ValueError: bad weights"), which is what
    # a status reason or a log line has room for; the traceback travels alongside.
    trace = "".join(traceback.format_exception(exc))
    return UserCodeFailed(f"{what}: {_exception_line(exc)}", trace)


def _exception_line(exc: BaseException) -> str:
    """``module.Class: message`` as a traceback's last line spells it, minus notes and context."""
    cls = type(exc)
    module = cls.__module__
    if module.startswith(_MODULE_PREFIX):  # show the script's own name, not the unique one
        module = module.split("_", 4)[-1]
    name = (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )
    text = _describe(exc)
    return f"{name}: {text}" if text else name


def _predict_with_method(data: Any, model: Any) -> Any:
    return model.predict(data)


def _predict_by_call(data: Any, model: Any) -> Any:
    return model(data)


def _default_predict(model: Any, functions: dict[str, _Function]) -> _Function:
    """``model.predict(data)``, else ``model(data)``: what the framework containers do.

    GEN's default predict_fn raises NotImplementedError; SK and PT call the model, and so
    does moorage. A model with neither fails at load, not on the first request.
    """
    # With transform_fn the default is never called, whatever the model is.
    if "transform_fn" in functions or callable(getattr(model, "predict", None)):
        return _Function(_predict_with_method, False)
    if callable(model):
        return _Function(_predict_by_call, False)
    raise LoadError(
        f"model_fn returned a {type(model).__name__}, which has no predict method and is not "
        "callable; define predict_fn(data, model) in the script"
    )


def _to_body(result: Any) -> tuple[bytes, str | None]:
    """Bytes for a returned body that is not bytes or str, and the type it implies if any."""
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result), None
    if isinstance(result, str):
        return result.encode(), None
    if result is None:  # MMS sends an empty body for None
        return b"", None
    if isinstance(result, Iterator):
        raise TypeError(
            f"the handler returned a {type(result).__name__}; streaming responses are not "
            "supported, so return bytes, str or (body, content_type)"
        )
    return encode_json(result), JSON


def _error_response(exc: BaseException, http_client_errors: bool) -> InferenceResponse:
    if http_client_errors:
        for error_type, status in _CLIENT_ERRORS:
            if isinstance(exc, error_type):
                logger.debug("request refused with %d: %s", status, exc)
                return InferenceResponse(status, str(exc).encode(), ERROR_CONTENT_TYPE)
    logger.debug("handler raised", exc_info=exc)
    trace = "".join(traceback.format_exception(exc))
    code = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None)
    if type(code) is int and 400 <= code <= 599:
        status = code
        if not isinstance(message, str):
            message = _describe(exc)
    else:
        # GEN wraps an Exception as GenericInferenceToolkitError(500, str(e)): the body starts
        # with the bare message, the class name shows only in the traceback's last line.
        # SystemExit and KeyboardInterrupt would end a toolkit worker; here the class says more.
        status = 500
        message = _describe(exc) if isinstance(exc, Exception) else _exception_line(exc)
    body = f"{message}\n{trace}".encode(errors="backslashreplace")
    return InferenceResponse(status, body, ERROR_CONTENT_TYPE)


def _describe(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a user exception whose __str__ fails must not fail the response
        return type(exc).__name__
