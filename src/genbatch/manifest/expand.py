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
from genbatch.jobs import JobSpec, job_key
from genbatch.manifest.blocks import BlockPlan, Fragment
from genbatch.manifest.templates import Template

__all__ = ["JobCheck", "check_block", "expand_block"]

# File-name fields whose values are always safe and whose format is checked by the first job.
_PLAIN_FIELDS = frozenset({"index", "key", "block", "repeat", "model"})


class JobCheck(NamedTuple):
    """What ``Manifest.validate`` needs of a job, without building the ``JobSpec``."""

    ordinal: int
    key: str
    file_stem: str | None
    """None when the block's file names are unique by construction (they hold ``{key}``)."""
    source_line: int | None


def expand_block(plan: BlockPlan) -> Iterator[JobSpec]:
    """Every job of ``plan`` in expansion order; raises ``ManifestError`` at the first bad one."""
    return _BlockExpander(plan).jobs()


def check_block(plan: BlockPlan) -> Iterator[JobCheck]:
    """Like ``expand_block`` but lighter: keys and (only when needed) file names."""
    return _BlockExpander(plan).checks()


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
        ordinal = self.plan.first_ordinal
        for inputs, variables, identity, line in self._combinations():
            for repeat in range(self.plan.repeat):
                yield self._job(ordinal, repeat, identity, inputs, variables, line)
                ordinal += 1

    def checks(self) -> Iterator[JobCheck]:
        """Keys and file names of the jobs, each checked as ``jobs()`` would."""
        plan = self.plan
        plain_stems = "key" in self.stem_fields and _PLAIN_FIELDS.issuperset(self.stem_fields)
        ordinal = plan.first_ordinal
        for inputs, variables, identity, line in self._combinations():
            for repeat in range(plan.repeat):
                key = job_key(plan.model_id, identity, repeat)
                stem = None
                if not plain_stems or ordinal == plan.first_ordinal:
                    values = self._stem_values(ordinal, key, repeat, inputs, variables)
                    stem = plan.file_name.render(values)
                yield JobCheck(ordinal, key, None if plain_stems else stem, line)
                ordinal += 1

    def _combinations(
        self,
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any], dict[str, Any], int | None]]:
        """Inputs, variables, identity inputs and line of each combination before repeats."""
        plan = self.plan
        for prompt, line in self._prompts():
            for combo in itertools.product(*plan.axes):
                inputs, variables = self._inputs(prompt, combo)
                identity = plan.model.with_defaults(inputs) if plan.model else inputs
                yield inputs, variables, identity, line

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
