"""The PyTorch toolkit's default handlers, for a model that is a ``torch.nn.Module``.

SageMaker's PyTorch images (spec/TOOLKIT.md §4, PT) differ from GEN where a function is missing:
the decoded body becomes a tensor on the model's device (float32 for JSON and CSV), the model
is called in eval mode under ``no_grad``, and a tensor prediction is made a list before it is
encoded. The usual PyTorch ``inference.py`` defines only ``model_fn`` (or a ``predict_fn`` that
calls ``data.to(device)``) and relies on that. An instance does not know which image it runs,
so these defaults apply when ``model_fn`` returned a torch module, which no other framework's
model is; everything else keeps GEN's.

torch is never imported here: a model that is a torch module means the script imported it.
"""

import sys
from collections.abc import Callable
from typing import Any

from moorage.runtime.codecs import TEXT_INPUT_TYPES, decode, parse_media_type


def torch_for(model: Any) -> Any | None:
    """The torch module when ``model`` is a ``torch.nn.Module``, else None."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(model, torch.nn.Module):
        return None
    return torch


def _device(torch: Any, model: Any) -> Any:
    # Where model_fn put the model; PT moves it to cuda when there is one, but moving a model
    # on every request is the cost moorage's load-once workers avoid.
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def input_fn(torch: Any, model: Any) -> Callable[[str | bytes, str], Any]:
    device = _device(torch, model)

    def default_input_fn(body: str | bytes, content_type: str) -> Any:
        array = decode(body, content_type)
        if parse_media_type(content_type).essence in TEXT_INPUT_TYPES:
            return torch.FloatTensor(array).to(device)
        return torch.from_numpy(array).to(device)

    return default_input_fn


def predict_fn(torch: Any, model: Any) -> Callable[[Any, Any], Any]:
    device = _device(torch, model)

    def default_predict_fn(data: Any, model: Any) -> Any:
        with torch.no_grad():
            model.eval()
            return model(data.to(device) if isinstance(data, torch.Tensor) else data)

    return default_predict_fn


def output_fn(
    torch: Any, encode: Callable[[Any, str], tuple[bytes, str]]
) -> Callable[[Any, str], tuple[bytes, str]]:
    """``encode`` (the GEN default output_fn) applied to the prediction, a tensor made a list."""

    def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
        if isinstance(prediction, torch.Tensor):
            prediction = prediction.detach().cpu().numpy().tolist()
        return encode(prediction, accept)

    return default_output_fn
