"""The models genbatch knows: their input schemas, output shapes, timing and prices.

The manifest loader validates every job against these schemas before a cent is spent; the
simulator serves exactly these models and rejects bad input with the same rules, the way the
real API answers 422. A model missing from here can still be run (with a warning): its inputs are
then sent unchecked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

FieldType = Literal["string", "integer", "number", "boolean"]
OutputKind = Literal["video", "image"]


@dataclass(frozen=True, kw_only=True)
class InputField:
    """One input of a model's schema."""

    name: str
    type: FieldType
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    # Some hosts send enum numbers as strings ("5" for 5): accept those too.
    numeric_strings: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable for this field, or None when it is."""
        typed = self._coerce(value)
        if typed is _INVALID:
            return f"{_show(value)} is not a {self.type}"
        if self.choices is not None and typed not in self.choices:
            return f"{_show(value)} is not one of {', '.join(_show(c) for c in self.choices)}"
        if self.minimum is not None and typed < self.minimum:
            return f"{_show(value)} is less than the minimum {_show(self.minimum)}"
        if self.maximum is not None and typed > self.maximum:
            return f"{_show(value)} is more than the maximum {_show(self.maximum)}"
        if self.max_length is not None and len(typed) > self.max_length:
            return f"is {len(typed)} characters long, more than {self.max_length}"
        return None

    def _coerce(self, value: Any) -> Any:
        if self.type == "string":
            return value if isinstance(value, str) else _INVALID
        if self.type == "boolean":
            return value if isinstance(value, bool) else _INVALID
        if isinstance(value, bool):
            return _INVALID
        if self.numeric_strings and isinstance(value, str):
            value = _parse_number(value)
        if self.type == "integer":
            return value if isinstance(value, int) else _INVALID
        return value if isinstance(value, int | float) else _INVALID


_INVALID = object()


def _parse_number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return _INVALID


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if value == "" or value.strip() != value else value
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Price:
    """A model's price: ``base_price_usd`` per ``price_unit`` (second of video, image, request)."""

    base_price_usd: float
    price_unit: str = "request"
    audio_multiplier: float = 1.0
    """Factor applied when the job asks for audio (``generate_audio`` true)."""


def estimate_cost(price: Price, inputs: Mapping[str, Any], spec: ModelSpec | None) -> float:
    """What one job costs: base price x seconds (per-second prices) x outputs x audio factor.

    ``inputs`` should already carry the schema's defaults (a 5 s clip unless told otherwise).
    """
    units = _as_float(inputs.get("duration"), 5.0) if price.price_unit == "second" else 1.0
    count = 1.0
    if spec is not None and spec.output_key.endswith("s"):
        count = max(1.0, _as_float(inputs.get(f"num_{spec.output_key}"), 1.0))
    audio = price.audio_multiplier if inputs.get("generate_audio") is True else 1.0
    return price.base_price_usd * units * count * audio


@dataclass(frozen=True, kw_only=True)
class InputProblem:
    """One reason a job's inputs do not fit the model's schema."""

    field: str
    message: str
    kind: Literal["missing", "unknown", "invalid"]

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What genbatch knows of one model of the catalog."""

    model_id: str
    kind: OutputKind
    inputs: tuple[InputField, ...]
    output_key: str
    """Key of ``output`` in the result: video, videos, image or images."""
    typical_seconds: float
    """Typical generation time on the real service."""
    base_price_usd: float
    price_unit: str
    """What the base price is per: "second" of video or "image"."""
    audio_multiplier: float = 1.0
    """Price factor when the job asks for audio (``generate_audio`` true)."""
    extension: str
    fields: Mapping[str, InputField] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", {f.name: f for f in self.inputs})

    def problems(self, inputs: Mapping[str, Any]) -> list[InputProblem]:
        """Every way ``inputs`` break this model's schema, in schema order, then unknown keys."""
        found: list[InputProblem] = []
        for spec in self.inputs:
            if spec.name not in inputs:
                if spec.required:
                    found.append(
                        InputProblem(field=spec.name, message="is required", kind="missing")
                    )
                continue
            message = spec.problem(inputs[spec.name])
            if message:
                found.append(InputProblem(field=spec.name, message=message, kind="invalid"))
        for name in inputs:
            if name not in self.fields:
                known = ", ".join(self.fields)
                found.append(
                    InputProblem(
                        field=name,
                        message=f"is not an input of {self.model_id} (known: {known})",
                        kind="unknown",
                    )
                )
        return found

    @property
    def price(self) -> Price:
        """The built-in price of this model."""
        return Price(
            base_price_usd=self.base_price_usd,
            price_unit=self.price_unit,
            audio_multiplier=self.audio_multiplier,
        )

    def cost_usd(self, inputs: Mapping[str, Any]) -> float:
        """What one job with ``inputs`` costs at the built-in price."""
        return estimate_cost(self.price, self.with_defaults(inputs), self)

    def with_defaults(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` completed with the schema's defaults (used for job identity)."""
        full = {f.name: f.default for f in self.inputs if f.default is not None}
        full.update(inputs)
        return full


KLING_2_6_PRO_T2V = ModelSpec(
    model_id="kling/kling-2-6/pro/text-to-video",
    kind="video",
    inputs=(
        InputField(name="prompt", type="string", required=True, max_length=2500),
        InputField(
            name="negative_prompt",
            type="string",
            max_length=2500,
            default="blur, distort, and low quality",
        ),
        InputField(
            name="duration", type="integer", choices=(5, 10), default=5, numeric_strings=True
        ),
        InputField(
            name="aspect_ratio", type="string", choices=("16:9", "9:16", "1:1"), default="16:9"
        ),
        InputField(name="generate_audio", type="boolean", default=True),
    ),
    output_key="video",
    typical_seconds=240.0,
    base_price_usd=0.07,
    price_unit="second",
    audio_multiplier=2.0,
    extension=".mp4",
)

HAILUO_02_T2V = ModelSpec(
    model_id="minimax/hailuo-02/standard/text-to-video",
    kind="video",
    inputs=(
        InputField(name="prompt", type="string", required=True, max_length=2000),
        InputField(
            name="duration", type="integer", choices=(6, 10), default=6, numeric_strings=True
        ),
        InputField(name="prompt_optimizer", type="boolean", default=True),
        InputField(name="num_videos", type="integer", minimum=1, maximum=2, default=1),
    ),
    output_key="videos",
    typical_seconds=180.0,
    base_price_usd=0.045,
    price_unit="second",
    extension=".mp4",
)

NANO_BANANA_2_T2I = ModelSpec(
    model_id="google/nano-banana-2/text-to-image",
    kind="image",
    inputs=(
        InputField(name="prompt", type="string", required=True, max_length=5000),
        InputField(
            name="aspect_ratio",
            type="string",
            choices=("1:1", "16:9", "9:16", "4:3", "3:4"),
            default="1:1",
        ),
        InputField(name="num_images", type="integer", minimum=1, maximum=4, default=1),
        InputField(name="seed", type="integer", minimum=0, maximum=2**31 - 1),
    ),
    output_key="images",
    typical_seconds=12.0,
    base_price_usd=0.039,
    price_unit="image",
    extension=".png",
)

SEEDREAM_4_T2I = ModelSpec(
    model_id="bytedance/seedream-4/text-to-image",
    kind="image",
    inputs=(
        InputField(name="prompt", type="string", required=True, max_length=3000),
        InputField(name="size", type="string", choices=("1K", "2K", "4K"), default="2K"),
        InputField(name="seed", type="integer", minimum=0, maximum=2**31 - 1),
    ),
    output_key="image",
    typical_seconds=20.0,
    base_price_usd=0.03,
    price_unit="image",
    extension=".png",
)

MODELS: Mapping[str, ModelSpec] = {
    m.model_id: m for m in (KLING_2_6_PRO_T2V, HAILUO_02_T2V, NANO_BANANA_2_T2I, SEEDREAM_4_T2I)
}


def find_model(model_id: str) -> ModelSpec | None:
    """The spec of ``model_id``, or None when genbatch does not know that model."""
    return MODELS.get(model_id)
