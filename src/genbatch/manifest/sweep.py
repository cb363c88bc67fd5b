"""What a block's sweep design adds to its plain grid: prompts with variants and wildcards, and
``sample:`` checked against the block's axes.

Kept apart from ``blocks`` so a block without either compiles exactly as it always did.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from genbatch.manifest.locations import Path_, Source, did_you_mean
from genbatch.manifest.packed import PackedTexts
from genbatch.manifest.prompts import PromptEntries, PromptEntry
from genbatch.manifest.sampling import SampleRequest
from genbatch.manifest.schema import SampleSpec
from genbatch.manifest.templates import Template, compile_template
from genbatch.manifest.variants import (
    Part,
    Pick,
    count_of,
    parse_choices,
    picks_of,
    text_fields_of,
)
from genbatch.manifest.wildcards import Wildcards

__all__ = [
    "CompiledPrompts",
    "Prompt",
    "VariantPrompt",
    "check_variant_names",
    "compile_prompt",
    "compile_prompts",
    "sample_request",
]


@dataclass(frozen=True, kw_only=True)
class VariantPrompt:
    """A prompt with variants or wildcards: one prompt per combination of its picks."""

    text: str
    """As written (in the manifest or its prompt file)."""
    parts: tuple[Part, ...]
    source: Source
    count: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    """The variables its picks set, nested ones included, in written order."""
    fields: frozenset[str] = field(init=False)
    """The template variables its texts use (``{animal}`` inside an option too)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", count_of(self.parts))
        picks = list(picks_of(self.parts))
        names = dict.fromkeys(name for pick in picks for name in pick.names)
        object.__setattr__(self, "names", tuple(names))
        fields = text_fields_of(self.parts, self.source, "prompt")
        object.__setattr__(self, "fields", fields.union(*(pick.fields for pick in picks)))


Prompt = str | Template | VariantPrompt
"""A prompt compiled: literal text, a template, or a prompt with variants."""


class CompiledPrompts(Sequence[Prompt]):
    """A block's prompts compiled, in order. A prompt that is its own text stays in the packed
    texts it was read into; only the others (templates, variant prompts, a text whose ``{{``
    became ``{``) are objects, in ``special``: a prompt file of 200,000 plain prompts holds no
    object per prompt for the run."""

    def __init__(self, texts: PackedTexts, special: dict[int, Prompt]) -> None:
        self._texts = texts
        self.special = special
        """The prompts that are not their own text, by index (in index order)."""

    def __len__(self) -> int:
        return len(self._texts)

    @overload
    def __getitem__(self, index: int) -> Prompt: ...

    @overload
    def __getitem__(self, index: slice) -> list[Prompt]: ...

    def __getitem__(self, index: int | slice) -> Prompt | list[Prompt]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        text = self._texts[index]  # IndexError first
        found = self.special.get(index % len(self._texts))
        return text if found is None else found

    def __iter__(self) -> Iterator[Prompt]:
        special = self.special
        for index, text in enumerate(self._texts):
            yield special.get(index, text)

    def variants(self) -> list[VariantPrompt]:
        """The prompts with variants or wildcards, in order."""
        return [p for p in self.special.values() if isinstance(p, VariantPrompt)]

    def choice_trees(self) -> Sequence[tuple[Part, ...]]:
        """Each prompt's choice tree, as ``Space.prompts`` numbers them."""
        return _ChoiceTrees(self)


_PLAIN: tuple[Part, ...] = ("",)
"""The choice tree of a prompt with no variant: its one text."""


class _ChoiceTrees(Sequence[tuple[Part, ...]]):
    """Each prompt's choice tree, made on demand: no tuple per prompt for the run."""

    def __init__(self, prompts: CompiledPrompts) -> None:
        self._prompts = prompts

    def __len__(self) -> int:
        return len(self._prompts)

    @overload
    def __getitem__(self, index: int) -> tuple[Part, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[Part, ...]]: ...

    def __getitem__(self, index: int | slice) -> tuple[Part, ...] | list[tuple[Part, ...]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError("prompt index out of range")
        return self._tree(self._prompts.special.get(index % len(self)))

    def __iter__(self) -> Iterator[tuple[Part, ...]]:
        special = self._prompts.special
        for index in range(len(self._prompts)):
            yield self._tree(special.get(index))

    @staticmethod
    def _tree(prompt: Prompt | None) -> tuple[Part, ...]:
        return prompt.parts if isinstance(prompt, VariantPrompt) else _PLAIN


def compile_prompts(entries: PromptEntries, wildcards: Wildcards) -> CompiledPrompts:
    """Every prompt of ``entries`` compiled (``compile_prompt``); their packed texts are
    shared, not copied."""
    special: dict[int, Prompt] = {}
    for index, text in enumerate(entries.texts):
        if not _MAY_COMPILE.search(text):
            continue  # plain text: compile_prompt returns it as it is
        prompt = compile_prompt(entries[index], wildcards)
        if not (isinstance(prompt, str) and prompt == text):
            special[index] = prompt
    return CompiledPrompts(entries.texts, special)


# What makes a prompt more than its text: a template's braces, a variant's | or a wildcard's __.
_MAY_COMPILE = re.compile(r"[{}|]|__")


def compile_prompt(entry: PromptEntry, wildcards: Wildcards) -> str | Template | VariantPrompt:
    """A prompt as a template (or literal text), or a ``VariantPrompt`` when it has picks."""
    text = entry.text
    if "|" in text or "__" in text:
        parts = parse_choices(text, source=entry.source, wildcard=wildcards)
        if any(isinstance(part, Pick) for part in parts):
            return VariantPrompt(text=text, parts=parts, source=entry.source)
    return compile_template(text, source=entry.source, label="prompt")


def check_variant_names(prompts: Sequence[object], taken: dict[str, str]) -> None:
    """A variant or wildcard may not set a variable ``vars``, ``grid`` or ``zip`` sets."""
    for prompt in prompts:
        if not isinstance(prompt, VariantPrompt):
            continue
        for name in prompt.names:
            if name in taken:
                raise prompt.source.error(
                    f"a variant or wildcard sets {{{name}}}, which {taken[name]} sets too; "
                    f"name the variant otherwise ({{other=a|b}})",
                    field="prompt",
                )


def sample_request(
    spec: SampleSpec,
    *,
    prompts: Sequence[object] | None,
    axis_keys: Sequence[Sequence[str]],
    axis_sizes: Sequence[int],
    where: Callable[[Path_], Source],
    path: Path_,
    warnings: list[str],
) -> SampleRequest:
    """``sample:`` checked against the block: weights name its axes and fit their values.

    ``axis_keys`` are the names of each axis (one grid key, or every zip key); ``where`` gives
    the source of a path under the block; what is worth a warning goes into ``warnings``.
    """
    weights = spec.weights or {}
    if spec.strategy == "latin":
        if weights:
            raise where((*path, "weights")).error(
                "weights apply to strategy: random only (latin covers every value evenly)",
                field="sample.weights",
            )
        _warn_weighted_variants(prompts, warnings)
    axis_weights: list[tuple[float, ...] | None] = [None] * len(axis_sizes)
    prompt_weights: tuple[float, ...] | None = None
    for name, values in weights.items():
        here = where((*path, "weights", name))
        if name == "prompt" and prompts is not None:
            prompt_weights = _fitted(values, len(prompts), here, name, "prompts")
            continue
        axis = next((i for i, keys in enumerate(axis_keys) if name in keys), None)
        if axis is None:
            known = sorted(
                {k for keys in axis_keys for k in keys} | ({"prompt"} if prompts else set())
            )
            raise here.error(
                f"is not a grid or zip key of this block{did_you_mean(name, known)} "
                f"(known: {', '.join(known) or 'none'})",
                field=f"sample.weights.{name}",
            )
        axis_weights[axis] = _fitted(values, axis_sizes[axis], here, name, "values")
    return SampleRequest(
        n=spec.n,
        seed=spec.seed,
        strategy=spec.strategy,
        prompt_weights=prompt_weights,
        axis_weights=tuple(axis_weights),
    )


def _fitted(
    values: list[float], size: int, here: Source, name: str, what: str
) -> tuple[float, ...]:
    if len(values) != size:
        raise here.error(
            f"has {len(values)} weights for {size} {what}; give one weight per value, in order",
            field=f"sample.weights.{name}",
        )
    if not any(values):
        raise here.error("every weight is 0", field=f"sample.weights.{name}")
    return tuple(values)


def _warn_weighted_variants(prompts: Sequence[object] | None, warnings: list[str]) -> None:
    """Latin ignores the weights written in prompts and wildcard files (often shared with
    manifests that sample at random): say so once per prompt."""
    for prompt in prompts or ():
        if not isinstance(prompt, VariantPrompt):
            continue
        names = [pick.name for pick in _weighted_picks(prompt.parts)]
        if names:
            message = prompt.source.error(
                f"strategy: latin ignores the weights (N::) of {', '.join(names)}: it uses "
                "every option evenly",
                field="prompt",
            )
            warnings.append(str(message))


def _weighted_picks(parts: tuple[Part, ...]) -> list[Pick]:
    """The picks holding a weight other than 1 themselves, nested ones included."""
    found: list[Pick] = []
    for pick in picks_of(parts):
        if not pick.weighted:
            continue
        if any(option.weight != 1.0 for option in pick.options):
            found.append(pick)
        for option in pick.options:
            found.extend(p for p in _weighted_picks(option.parts) if p not in found)
    return found
