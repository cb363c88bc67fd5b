"""What a model costs: ``base_price_usd`` per ``price_unit``, and the estimate for one job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Price", "estimate_cost"]


@dataclass(frozen=True, kw_only=True)
class Price:
    """A model's price: ``base_price_usd`` per ``price_unit`` (second of video, image, request)."""

    base_price_usd: float
    price_unit: str = "request"
    audio_multiplier: float = 1.0
    """Factor applied when the job asks for audio (``generate_audio`` true)."""

    def describe(self) -> str:
        """``$0.07/second``, ``$0.039/image``."""
        return f"${self.base_price_usd:g}/{self.price_unit}"


def estimate_cost(price: Price, inputs: Mapping[str, Any], output_key: str | None) -> float:
    """What one job costs: base price x seconds (per-second prices) x outputs x audio factor.

    ``inputs`` should already carry the schema's defaults (a 5 s clip unless told otherwise);
    ``output_key`` (``images``, ``video``...) says which ``num_...`` input counts the outputs.
    """
    units = _as_float(inputs.get("duration"), 5.0) if price.price_unit == "second" else 1.0
    count = 1.0
    if output_key is not None and output_key.endswith("s"):
        count = max(1.0, _as_float(inputs.get(f"num_{output_key}"), 1.0))
    audio = price.audio_multiplier if inputs.get("generate_audio") is True else 1.0
    return price.base_price_usd * units * count * audio


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
