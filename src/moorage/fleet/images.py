"""What an ``Image`` in a container definition means to moorage.

SageMaker framework images (scikit-learn, PyTorch, XGBoost, TensorFlow, MXNet, Hugging Face,
and images built on the inference toolkits) all run ``inference.py`` the same way, so they map
to the built-in runtime in moorage's own Python environment. ``file:///path/to/serve`` names a
local program that speaks the container contract: bring-your-own-container without a container
engine. Anything else cannot run here and is refused when the model is created.
"""

import os
import re
from enum import StrEnum
from urllib.parse import unquote, urlsplit

from moorage.errors import ValidationError


class ImageKind(StrEnum):
    BUILTIN = "builtin"
    LOCAL_COMMAND = "local-command"


# Repository names of SageMaker's framework inference images, as in
# <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>.
_FRAMEWORK = re.compile(
    r"(sagemaker-)?(scikit-learn|sklearn|xgboost|pytorch-inference|pytorch|tensorflow-inference"
    r"|mxnet-inference|huggingface-[a-z0-9-]*inference[a-z0-9-]*|inference-toolkit|moorage)"
    r"([-a-z0-9]*)"
)


def classify_image(image: str | None) -> ImageKind:
    """Raise ValidationError for an image moorage cannot run, naming the forms it can."""
    if not image:
        return ImageKind.BUILTIN
    if image.startswith("file://"):
        path = command_path(image)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ValidationError(
                f"Image '{image}' must name an executable file (a serve command that speaks "
                "the SageMaker container contract)."
            )
        return ImageKind.LOCAL_COMMAND
    repository = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    if _FRAMEWORK.fullmatch(repository):
        return ImageKind.BUILTIN
    raise ValidationError(
        f"Image '{image}' cannot run here: moorage runs SageMaker framework images "
        "(scikit-learn, PyTorch, XGBoost, TensorFlow, MXNet, Hugging Face) with its built-in "
        "runtime, and local serve commands given as file:///path/to/serve."
    )


def command_path(image: str) -> str:
    return unquote(urlsplit(image).path)
