"""Expansion of compiled blocks into jobs: prompts x grid x zip rows x repeat, lazily.

Order is part of the contract (ordinals and default file names depend on it): blocks in written
order; within a block prompts outermost, then the grid's cartesian product in written key order,
then the zip rows, then the repeat index innermost.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from genbatch.filenames import slugify
from genbatch.jobs import JobSpec, job_key
from genbatch.manifest.blocks import BlockPlan, Fragment
from genbatch.manifest.templates import Template

__all__ = ["expand_block"]


def expand_block(plan: BlockPlan) -> Iterator[JobSpec]:
    """Every job of ``plan`` in expansion order; raises ``ManifestError`` at the first bad one."""
    return _BlockExpander(plan).jobs()


class _BlockExpander:
    """Per-block state that makes each job cheap: slugs, defaults, which fields to render."""

    def __init__(self, plan: BlockPlan) -> None:
        self.plan = plan
        self.model_slug = slugify(plan.model_id, max_length=80)
        self.defaults: dict[str, Any] = (
            {s.name: s.default for s in plan.model.inputs if s.default is not None}
            if plan.model is not None
            else {}
        )
        self.stem_fields = plan.file_name.fields

    def jobs(self) -> Iterator[JobSpec]:
        """The jobs, rendering templates and checking what they render to."""
        plan = self.plan
        ordinal = plan.first_ordinal
        for prompt, line in self._prompts():
            for combo in itertools.product(*plan.axes):
                inputs, variables = self._inputs(prompt, combo)
                identity = plan.model.with_defaults(inputs) if plan.model else inputs
                for repeat in range(plan.repeat):
                    yield self._job(ordinal, repeat, identity, inputs, variables, line)
                    ordinal += 1

    def _prompts(self) -> Iterator[tuple[str | Template | None, int | None]]:
        """Each prompt with the manifest line it comes from (the block's, for prompt files)."""
        plan = self.plan
        if plan.prompts is None:
            yield None, plan.source.line
            return
        for prompt, source in zip(plan.prompts, plan.prompt_sources, strict=True):
            yield prompt, source.line if source.file == plan.source.file else plan.source.line

    def _inputs(
        self, prompt: str | Template | None, combo: tuple[Fragment, ...]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        fixed = self.plan.fixed
        variables = dict(fixed.variables)
        inputs: dict[str, Any] = {}
        for fragment in combo:
            variables.update(fragment.variables)
        if isinstance(prompt, Template):
            inputs["prompt"] = self._checked(prompt, variables)
        elif prompt is not None:
            inputs["prompt"] = prompt
        inputs.update(fixed.inputs)
        for template in fixed.templates:
            inputs[template.label] = self._checked(template, variables)
        for fragment in combo:
            inputs.update(fragment.inputs)
        return inputs, variables

    def _checked(self, template: Template, variables: dict[str, Any]) -> str:
        """``template`` rendered, and the result checked against the model's schema."""
        text = template.render(variables)
        model = self.plan.model
        spec = model.fields.get(template.label) if model is not None else None
        problem = spec.problem(text) if spec is not None else None
        if problem:
            raise template.source.error(problem, field=template.label)
        return text

    def _job(
        self,
        ordinal: int,
        repeat: int,
        identity: dict[str, Any],
        inputs: dict[str, Any],
        variables: dict[str, Any],
        line: int | None,
    ) -> JobSpec:
        plan = self.plan
        key = job_key(plan.model_id, identity, repeat)
        if repeat:
            # Each job owns its dicts: a consumer changing one must not change its siblings.
            inputs, variables = dict(inputs), dict(variables)
        values = self._stem_values(ordinal, key, repeat, inputs, variables)
        return JobSpec(
            key=key,
            ordinal=ordinal,
            block=plan.name,
            model_id=plan.model_id,
            inputs=inputs,
            variables=variables,
            repeat_index=repeat,
            file_stem=plan.file_name.render(values),
            output_dir=plan.output_dir,
            source_line=line,
        )

    def _stem_values(
        self, ordinal: int, key: str, repeat: int, inputs: dict[str, Any], variables: dict[str, Any]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.stem_fields:
            if name == "index":
                values[name] = ordinal
            elif name == "key":
                values[name] = key
            elif name == "repeat":
                values[name] = repeat
            elif name == "block":
                values[name] = self.plan.name
            elif name == "model":
                values[name] = self.model_slug
            elif name == "prompt":
                values[name] = slugify(str(inputs.get("prompt", "")))
            else:
                values[name] = _first(name, variables, inputs, self.defaults)
        return values


def _first(name: str, *mappings: dict[str, Any]) -> Any:
    for mapping in mappings:
        if name in mapping:
            return mapping[name]
    return ""
