"""Expansion of compiled blocks into jobs: prompts x grid x zip rows x repeat, lazily.

Order is part of the contract (ordinals and default file names depend on it): blocks in written
order; within a block prompts outermost, then the grid's cartesian product in written key order,
then the zip rows, then the repeat index innermost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, NamedTuple

from genbatch.filenames import slugify
from genbatch.jobs import JobSpec, job_key_of_json
from genbatch.manifest.blocks import BlockPlan, Fragment
from genbatch.manifest.layouts import Constant, JsonLayout, Slot, encode_value
from genbatch.manifest.templates import Template

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
    """One combination of a prompt and a choice on every axis, before repeats."""

    inputs: dict[str, Any]
    variables: dict[str, Any]
    slots: list[str]
    line: int | None


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
        repeats = range(plan.repeat)
        render_stem = plan.file_name.render_fields
        render_identity = self.identity_layout.render
        render_inputs = self.inputs_layout.render
        render_variables = self.variables_layout.render
        model_json = self.model_json
        for inputs, variables, slots, line in self._combinations():
            identity_json = render_identity(slots)
            inputs_json = render_inputs(slots)
            variables_json = render_variables(slots)
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
        """Inputs, variables, slots and line of each combination before repeats."""
        fixed = self.plan.fixed
        for prompt, row, line in self._prompts():
            for choices in itertools.product(*self.axes):
                variables = dict(fixed.variables)
                for choice in choices:
                    variables.update(choice.variables)
                inputs, slots = self._inputs(prompt, row, variables)
                for choice in choices:
                    inputs.update(choice.inputs)
                    slots.extend(choice.encoded)
                yield _Combination(inputs, variables, slots, line)

    def _prompts(self) -> Iterator[tuple[str | Template | None, tuple[Any, ...], int | None]]:
        """Each prompt with the inputs its row sets and the manifest line it comes from (the
        block's, for prompt files)."""
        plan = self.plan
        if plan.prompts is None:
            yield None, (), plan.source.line
            return
        rows = plan.prompt_rows or itertools.repeat(())
        for prompt, row, source in zip(plan.prompts, rows, plan.prompt_sources, strict=False):
            line = source.line if source.file == plan.source.file else plan.source.line
            yield prompt, row, line

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
