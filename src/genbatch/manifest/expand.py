"""Expansion of compiled blocks into jobs: prompts x grid x zip rows x repeat, lazily.

Order is part of the contract (ordinals and default file names depend on it): blocks in written
order; within a block prompts outermost, then the grid's cartesian product in written key order,
then the zip rows, then the repeat index innermost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from genbatch.filenames import slugify
from genbatch.jobs import JobSpec, job_key_of_json
from genbatch.manifest.blocks import BlockPlan, Fragment
from genbatch.manifest.layouts import Constant, JsonLayout, Slot, encode_value
from genbatch.manifest.locations import Source
from genbatch.manifest.sampling import sample_indices
from genbatch.manifest.sweep import VariantPrompt
from genbatch.manifest.templates import Template, compile_template
from genbatch.manifest.variants import decode

__all__ = ["expand_block"]

EXPANSION_VERSION = 1
"""Raise it when a manifest's jobs change without the manifest changing (new defaults, new
fields...): ledgers then sync again instead of trusting what they last synced."""

# File-name fields whose values are always safe and whose format is checked by the first job.
PLAIN_FIELDS = frozenset({"index", "key", "block", "repeat", "model"})


def expand_block(plan: BlockPlan) -> Iterator[JobSpec]:
    """Every job of ``plan`` in expansion order; raises ``ManifestError`` at the first bad one."""
    return _BlockExpander(plan).jobs()


class _Choice(NamedTuple):
    """A fragment of an axis (its inputs and variables) with the encoded JSON of its values,
    in slot order."""

    inputs: dict[str, Any]
    variables: dict[str, Any]
    encoded: tuple[str, ...]


class _Combination(NamedTuple):
    """One combination of a prompt and a choice on every axis, and its repeat indices."""

    inputs: dict[str, Any]
    variables: dict[str, Any]
    slots: list[str]
    line: int | None
    repeats: Sequence[int]


class _Prompt(NamedTuple):
    """One prompt to send (its variants chosen), the inputs its row sets, its line, and the
    variables its variants and wildcards set (as written: rendered once the job's are known)."""

    prompt: str | Template | None
    row: tuple[Any, ...]
    line: int | None
    picked: dict[str, str] | None


class _BlockExpander:
    """Per-block state that makes each job cheap: slugs, defaults, the JSON layouts.

    Slots, in order: the prompt (when the block has prompts), the inputs its prompt file's row
    sets, each rendered input template,
    then per axis its input values and its variable values. The inputs, the identity (inputs
    completed with the schema's defaults) and the variables are each a ``JsonLayout`` over them.
    """

    def __init__(self, plan: BlockPlan) -> None:
        self.plan = plan
        self.model_slug = slugify(plan.model_id, max_length=80)
        # The schema's defaults complete a job's identity even with ``validate: false``: writing
        # a default out must not make a job new, checked or not.
        self.defaults: dict[str, Any] = dict(plan.schema.defaults) if plan.schema else {}
        self.prompt_field = plan.prompt_field
        self.stem_fields = plan.file_name.fields
        self.model_json = encode_value(plan.model_id)
        inputs: dict[str, Constant | Slot] = {n: Constant(v) for n, v in plan.fixed.inputs.items()}
        variables: dict[str, Constant | Slot] = {
            n: Constant(v) for n, v in plan.fixed.variables.items()
        }
        rendered = [plan.prompt_field] if plan.prompts is not None else []
        rendered += [*plan.prompt_inputs, *(t.label for t in plan.fixed.templates)]
        for index, name in enumerate(rendered):
            inputs[name] = Slot(index)
        self.axes = tuple(self._choices(axis, inputs, variables) for axis in plan.axes)
        identity = {n: Constant(v) for n, v in self.defaults.items()} | inputs
        self.inputs_layout = JsonLayout(inputs)
        self.identity_layout = JsonLayout(identity)
        self.variables_layout = JsonLayout(variables)
        # Variants set variables that differ from prompt to prompt: no fixed layout fits them.
        self.fixed_variables = not plan.variant_names
        self.compile = lru_cache(maxsize=4096)(self._compile)

    def _choices(
        self,
        axis: tuple[Fragment, ...],
        inputs: dict[str, Constant | Slot],
        variables: dict[str, Constant | Slot],
    ) -> tuple[_Choice, ...]:
        """The axis's fragments with their encoded values; adds the axis's slots."""
        first = axis[0]  # every fragment of an axis sets the same names
        slot = sum(isinstance(p, Slot) for p in (*inputs.values(), *variables.values()))
        for names, layout in ((first.inputs, inputs), (first.variables, variables)):
            for name in names:
                layout[name] = Slot(slot)
                slot += 1
        return tuple(
            _Choice(
                f.inputs,
                f.variables,
                tuple(encode_value(v) for v in (*f.inputs.values(), *f.variables.values())),
            )
            for f in axis
        )

    def jobs(self) -> Iterator[JobSpec]:
        """The jobs, rendering templates and checking what they render to."""
        plan = self.plan
        ordinal = plan.first_ordinal
        render_stem = plan.file_name.render_fields
        render_identity = self.identity_layout.render
        render_inputs = self.inputs_layout.render
        render_variables = self.variables_layout.render
        model_json = self.model_json
        fixed_variables = self.fixed_variables
        combinations = self._combinations() if plan.sample is None else self._sampled()
        for inputs, variables, slots, line, repeats in combinations:
            identity_json = render_identity(slots)
            inputs_json = render_inputs(slots)
            variables_json = render_variables(slots) if fixed_variables else None
            for repeat in repeats:
                key = job_key_of_json(model_json, identity_json, repeat)
                if repeat:
                    # Each job owns its dicts: a consumer changing one must not change its siblings.
                    inputs, variables = dict(inputs), dict(variables)
                yield JobSpec(
                    key=key,
                    ordinal=ordinal,
                    block=plan.name,
                    model_id=plan.model_id,
                    inputs=inputs,
                    variables=variables,
                    repeat_index=repeat,
                    file_stem=render_stem(
                        self._stem_values(ordinal, key, repeat, inputs, variables)
                    ),
                    output_dir=plan.output_dir,
                    source_line=line,
                    inputs_json=inputs_json,
                    variables_json=variables_json,
                )
                ordinal += 1

    def _combinations(self) -> Iterator[_Combination]:
        """Every combination in expansion order, with all the repeat indices."""
        repeats = range(self.plan.repeat)
        for prompt in self._prompts():
            for choices in itertools.product(*self.axes):
                yield self._combination(prompt, choices, repeats)

    def _sampled(self) -> Iterator[_Combination]:
        """The combinations ``sample:`` draws, in draw order, each with its one repeat index."""
        plan = self.plan
        assert plan.sample is not None
        for index in sample_indices(plan.space, plan.sample):
            point = plan.space.point(index)
            choices = [axis[value] for axis, value in zip(self.axes, point.axes, strict=True)]
            prompt = self._prompt_at(point.prompt, point.within)
            yield self._combination(prompt, choices, (point.repeat,))

    def _combination(
        self, prompt: _Prompt, choices: Sequence[_Choice], repeats: Sequence[int]
    ) -> _Combination:
        """Inputs, variables and slots of a prompt with a choice on every axis."""
        variables = dict(self.plan.fixed.variables)
        if prompt.picked:
            variables.update(prompt.picked)
        for choice in choices:
            variables.update(choice.variables)
        if prompt.picked:
            self._render_picked(prompt.picked, variables)
        inputs, slots = self._inputs(prompt.prompt, prompt.row, variables)
        for choice in choices:
            inputs.update(choice.inputs)
            slots.extend(choice.encoded)
        return _Combination(inputs, variables, slots, prompt.line, repeats)

    def _prompts(self) -> Iterator[_Prompt]:
        """Each prompt (each combination of its variants) in expansion order."""
        plan = self.plan
        if plan.prompts is None:
            yield _Prompt(None, (), plan.source.line, None)
            return
        for index, prompt in enumerate(plan.prompts):
            if isinstance(prompt, VariantPrompt):
                for within in range(prompt.count):
                    yield self._prompt_at(index, within)
            else:
                yield _Prompt(prompt, self._row(index), self._line(index), None)

    def _prompt_at(self, index: int, within: int) -> _Prompt:
        """Prompt ``index`` with its variants' combination ``within``."""
        prompts = self.plan.prompts
        if prompts is None:
            return _Prompt(None, (), self.plan.source.line, None)
        prompt = prompts[index]
        if not isinstance(prompt, VariantPrompt):
            return _Prompt(prompt, self._row(index), self._line(index), None)
        picked: dict[str, str] = {}
        text = decode(prompt.parts, within, picked)
        return _Prompt(
            self.compile(text, prompt.source), self._row(index), self._line(index), picked
        )

    def _row(self, index: int) -> tuple[Any, ...]:
        rows = self.plan.prompt_rows
        return rows[index] if rows else ()

    def _line(self, index: int) -> int | None:
        """The manifest line of prompt ``index`` (the block's, for prompt files)."""
        lines = self.plan.prompt_lines
        return lines[index] if lines else self.plan.source.line

    def _compile(self, text: str, source: Source) -> str | Template:
        """A prompt its variants made, as a template; a plain one is checked here."""
        compiled = compile_template(text, source=source, label="prompt")
        model = self.plan.model
        if isinstance(compiled, str) and model is not None:
            problem = model.value_problem(self.prompt_field, compiled)
            if problem is not None:
                raise source.error(problem.message, field=problem.field)
        return compiled

    @staticmethod
    def _render_picked(picked: dict[str, str], variables: dict[str, Any]) -> None:
        """The picked texts holding ``{field}`` or ``{{`` rendered with the job's variables."""
        for name, text in picked.items():
            if "{" in text or "}" in text:
                compiled = compile_template(text, source=Source("variant"), label=name)
                variables[name] = (
                    compiled.render(variables) if isinstance(compiled, Template) else compiled
                )

    def _inputs(
        self, prompt: str | Template | None, row: tuple[Any, ...], variables: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """The job's inputs before its axes' inputs, and the encoded values of those rendered
        (the prompt, its row's inputs, the templates)."""
        fixed = self.plan.fixed
        inputs: dict[str, Any] = {}
        field = self.prompt_field
        if isinstance(prompt, Template):
            inputs[field] = self._checked(prompt, variables)
        elif prompt is not None:
            inputs[field] = prompt
        inputs.update(zip(self.plan.prompt_inputs, row, strict=True))
        inputs.update(fixed.inputs)
        rendered = [encode_value(inputs[field])] if prompt is not None else []
        rendered += [encode_value(value) for value in row]
        for template in fixed.templates:
            text = inputs[template.label] = self._checked(template, variables)
            rendered.append(encode_value(text))
        return inputs, rendered

    def _checked(self, template: Template, variables: dict[str, Any]) -> str:
        """``template`` rendered, and the result checked against the model's schema."""
        text = template.render(variables)
        model = self.plan.model
        problem = model.value_problem(template.label, text) if model is not None else None
        if problem is not None:
            raise template.source.error(problem.message, field=problem.field)
        return text

    def _stem_values(
        self, ordinal: int, key: str, repeat: int, inputs: dict[str, Any], variables: dict[str, Any]
    ) -> list[Any]:
        """The value of each field of the file name, in ``FileNameTemplate.fields`` order."""
        values: list[Any] = []
        for name in self.stem_fields:
            if name == "index":
                values.append(ordinal)
            elif name == "key":
                values.append(key)
            elif name == "repeat":
                values.append(repeat)
            elif name == "block":
                values.append(self.plan.name)
            elif name == "model":
                values.append(self.model_slug)
            elif name == "prompt":
                values.append(slugify(str(inputs.get(self.prompt_field, ""))))
            else:
                values.append(_first(name, variables, inputs, self.defaults))
        return values


def _first(name: str, *mappings: dict[str, Any]) -> Any:
    for mapping in mappings:
        if name in mapping:
            return mapping[name]
    return ""
