"""The example model bundled with moorage: a linear regression over 4 features.

Invoke it with JSON rows, e.g. ``[[1, 2, 3, 4]]``, or CSV lines such as ``1,2,3,4``.
"""

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np


class LinearModel:
    def __init__(self, weights: Sequence[float], bias: float) -> None:
        self.weights = np.asarray(weights, dtype=float)
        self.bias = float(bias)

    def predict(self, rows: Any) -> Any:
        rows = np.atleast_2d(np.asarray(rows, dtype=float))
        return rows @ self.weights + self.bias


def model_fn(model_dir: str) -> LinearModel:
    with open(os.path.join(model_dir, "model.json")) as f:
        params = json.load(f)
    return LinearModel(params["weights"], params["bias"])
