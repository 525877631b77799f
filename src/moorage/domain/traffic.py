"""How an endpoint's traffic splits between its production variants."""

import math
from collections.abc import Mapping

from moorage.errors import ValidationError


def traffic_shares(weights: Mapping[str, float]) -> dict[str, float]:
    """Each variant's share of traffic: its weight over the sum of all weights.

    ``weights`` maps variant name to ``InitialVariantWeight`` or ``DesiredWeight``. At least one
    weight must be above zero; none may be negative.
    """
    for variant, weight in weights.items():
        if not math.isfinite(weight) or weight < 0:
            raise ValidationError(
                f"Variant '{variant}' has weight {weight}; weights must be 0 or more."
            )
    total = math.fsum(weights.values())
    if total <= 0:
        names = ", ".join(weights) or "none"
        raise ValidationError(
            f"All variant weights are 0 (variants: {names}); give at least one a weight above 0."
        )
    return {variant: weight / total for variant, weight in weights.items()}
