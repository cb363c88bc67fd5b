"""Blocks of jobs: inheritance from the top level, then everything checkable once per block.

A ``BlockPlan`` is a block compiled for fast expansion: its fixed values, its axes (prompts,
each grid key, the zip rows) as pre-validated fragments, its templates parsed and their
variables resolved, its output folder and file-name template. Whatever does not depend on one
particular combination is checked here, once, so expanding a million jobs only renders
templates and hashes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbatch.catalog import Catalog, ModelSchema
from genbatch.errors import ManifestError
from genbatch.filenames import (
    DEFAULT_FILE_NAME_TEMPLATE,
    FileNameTemplate,
    compile_file_name_template,
    sanitize_file_stem,
)
from genbatch.manifest.locations import Path_, Source, did_you_mean, render_path
from genbatch.manifest.model_schemas import resolve_model
from genbatch.manifest.prompts import (
    PromptEntries,
    inline_prompts,
    read_prompt_file,
)
from genbatch.manifest.sampling import SampleRequest, Space
from genbatch.manifest.schema import BlockSpec, ManifestSpec, PromptFileSpec, attribute_of
from genbatch.manifest.sweep import (
    CompiledPrompts,
    Prompt,
    VariantPrompt,
    check_variant_names,
    compile_prompts,
    sample_request,
)
from genbatch.manifest.templates import Template, compile_template
from genbatch.manifest.wildcards import Wildcards
from genbatch.manifest.yaml_loader import YamlDocument

__all__ = ["BUILTIN_FILE_FIELDS", "BlockPlan", "Fragment", "compile_blocks"]

MAIN_BLOCK = "main"
BUILTIN_FILE_FIELDS = ("index", "key", "block", "repeat", "model", "prompt")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)+")


@dataclass(frozen=True, slots=True)
class Fragment:
    """What one choice adds to a job: the fixed values, one grid value or one zip row."""

    inputs: dict[str, Any]
    """Input values sent as they are."""
    variables: dict[str, Any]
    """Template variables (and grid/zip axes, which are recorded as variables too)."""
    sources: dict[str, Source]
    """Where each input or variable was written."""
    templates: tuple[Template, ...] = ()
    """Inputs rendered per job; ``Template.label`` is the input's name."""


@dataclass(frozen=True, kw_only=True)
class BlockPlan:
    """One block compiled for expansion (see the module docstring)."""

    name: str
    model_id: str
    model: ModelSchema | None
    """The schema jobs are checked against; None with ``validate: false`` or no schema."""
    schema: ModelSchema | None
    """The schema found for the model, checked against or not (prices, provenance)."""
    prompt_field: str
    """The input ``prompts:`` fills."""
    source: Source
    """The block's line: its item under ``jobs:``, or the top-level ``model:``."""
    fixed: Fragment
    prompts: CompiledPrompts | None
    prompt_lines: tuple[int | None, ...] = ()
    """Each prompt's line when the manifest lists them; empty for a prompt file, whose jobs
    carry the block's line (a prompt's own line served the checks on load)."""
    prompt_inputs: tuple[str, ...] = ()
    """Inputs each row of the prompt file sets (``prompts: {file: ..., inputs: [...]}``)."""
    prompt_rows: tuple[tuple[Any, ...], ...] = ()
    """Per prompt, the values of ``prompt_inputs`` in that order (empty without them)."""
    axes: tuple[tuple[Fragment, ...], ...]
    """Grid keys in written order, then the zip rows; combined as a cartesian product."""
    repeat: int
    output_dir: str
    file_name: FileNameTemplate
    first_ordinal: int = 0
    sample: SampleRequest | None = None
    """``sample:``: the jobs are drawn from the space instead of being all of it."""
    wildcard_texts: tuple[tuple[str, str], ...] = ()
    """The wildcard files read, by name: the jobs depend on them."""
    space: Space = field(init=False)
    """Every combination of the block (its size: the full expansion's job count)."""
    job_count: int = field(init=False)

    def __post_init__(self) -> None:
        trees = self.prompts.choice_trees() if self.prompts is not None else (("",),)
        space = Space(prompts=trees, axes=tuple(len(a) for a in self.axes), repeat=self.repeat)
        object.__setattr__(self, "space", space)
        count = space.size if self.sample is None else min(self.sample.n, space.size)
        object.__setattr__(self, "job_count", count)

    @property
    def variant_names(self) -> tuple[str, ...]:
        """The variables the prompts' variants and wildcards set, in first-written order."""
        variants = self.prompts.variants() if self.prompts is not None else []
        return tuple(dict.fromkeys(n for p in variants for n in p.names))


@dataclass(frozen=True, slots=True)
class _Written:
    """A value as the block sees it after inheritance, with the path it was written at."""

    value: Any
    path: Path_


class _BlockCompiler:
    """Compiles one block; ``document`` gives the lines, ``top`` the inherited values."""

    def __init__(
        self,
        document: YamlDocument,
        top: ManifestSpec,
        block: BlockSpec | None,
        index: int | None,
        *,
        base_dir: Path,
        run_name: str,
        wildcards: Wildcards | None = None,
    ) -> None:
        self.document = document
        self.wildcards = wildcards or Wildcards(
            base_dir, os.path.dirname(document.file), allow_outside=False
        )
        self.top = top
        self.block = block
        self.block_path: Path_ = ("jobs", index) if index is not None else ()
        self.base_dir = base_dir
        self.run_name = run_name

    def source(self, path: Path_) -> Source:
        """Where the value at ``path`` is written in the manifest."""
        return Source(self.document.file, self.document.line_of(path))

    def pick(self, key: str) -> _Written:
        """The block's own value of ``key`` if it sets one, else the top level's."""
        attribute = attribute_of(key)
        if self.block is not None and attribute in self.block.model_fields_set:
            return _Written(getattr(self.block, attribute), (*self.block_path, key))
        return _Written(getattr(self.top, attribute), (key,))

    def merged(self, key: str) -> dict[str, _Written]:
        """``inputs`` or ``vars``: the top level's, updated with the block's."""
        found = {
            name: _Written(value, (key, name))
            for name, value in (getattr(self.top, key) or {}).items()
        }
        if self.block is not None:
            found.update(
                {
                    name: _Written(value, (*self.block_path, key, name))
                    for name, value in (getattr(self.block, key) or {}).items()
                }
            )
        return found

    def output(self, key: str) -> _Written:
        """``output.dir`` or ``output.name``: the block's if it sets it, else the top level's."""
        for spec, path in ((self.block, (*self.block_path, "output")), (self.top, ("output",))):
            output = getattr(spec, "output", None)
            if output is not None and getattr(output, key) is not None:
                return _Written(getattr(output, key), (*path, key))
        return _Written(None, ("output", key))


def compile_blocks(
    document: YamlDocument,
    spec: ManifestSpec,
    *,
    base_dir: Path,
    run_name: str,
    strict: bool,
    catalog: Catalog,
) -> tuple[list[BlockPlan], list[str]]:
    """Every block of the manifest compiled, with the warnings found on the way."""
    blocks: list[tuple[BlockSpec | None, int | None]] = (
        [(block, i) for i, block in enumerate(spec.jobs)] if spec.jobs else [(None, None)]
    )
    plans: list[BlockPlan] = []
    warnings: list[str] = []
    names: dict[str, int] = {}
    ordinal = 0
    wildcards = Wildcards(
        base_dir,
        os.path.dirname(document.file),
        allow_outside=spec.allow_outside_prompt_files,
    )
    for block, index in blocks:
        compiler = _BlockCompiler(
            document, spec, block, index, base_dir=base_dir, run_name=run_name, wildcards=wildcards
        )
        name = _block_name(compiler, block, index, names)
        plan = _compile_block(compiler, name, ordinal, strict, warnings, catalog)
        plans.append(plan)
        ordinal += plan.job_count
    _warn_nested_folders(plans, warnings)
    return plans, warnings


def _block_name(
    compiler: _BlockCompiler, block: BlockSpec | None, index: int | None, names: dict[str, int]
) -> str:
    if block is None or index is None:
        return MAIN_BLOCK
    name = block.name or f"block-{index + 1}"
    line = compiler.document.line_of(("jobs", index, "name"))
    if name in names:
        raise ManifestError(
            f"two blocks are named '{name}' (first at line {names[name]})",
            file=compiler.document.file,
            line=line,
            field="name",
        )
    names[name] = line
    return name


def _compile_block(
    compiler: _BlockCompiler,
    name: str,
    first_ordinal: int,
    strict: bool,
    warnings: list[str],
    catalog: Catalog,
) -> BlockPlan:
    model_id, schema, model_source = _model(compiler, strict, warnings, catalog)
    model = schema if compiler.pick("validate").value is not False else None
    prompt_field = _prompt_field(compiler, model, model_id)
    prompt_entries = _prompt_entries(compiler, model)
    row_inputs = tuple(name for name, _ in prompt_entries[0].inputs) if prompt_entries else ()
    inputs, variables = compiler.merged("inputs"), compiler.merged("vars")
    grid, zipped = compiler.pick("grid"), compiler.pick("zip")
    _check_no_clashes(
        compiler, inputs, variables, grid, zipped, prompt_entries, (prompt_field, *row_inputs)
    )
    prompts = _compile_prompts(compiler, prompt_entries)
    # Only templates and variant prompts matter below: the texts have no field to check.
    special = list(prompts.special.values()) if prompts is not None else []
    fixed_templates = _compile_input_templates(compiler, inputs)
    defined = set(variables) | set(grid.value or {}) | set(zipped.value or {})
    all_templates = [t for t in (*special, *fixed_templates.values()) if isinstance(t, Template)]
    _check_defined(all_templates, defined)
    _check_variants(special, variables, grid, zipped)
    referenced = {name for t in all_templates for name in t.fields}
    referenced.update(n for p in special if isinstance(p, VariantPrompt) for n in p.fields)
    axis_builder = _AxisBuilder(compiler, model, referenced)
    axes = (*axis_builder.grid_axes(grid), *axis_builder.zip_axis(zipped))
    fixed = _fixed_fragment(compiler, inputs, variables, fixed_templates)
    checker = _StaticChecker(model_id, model, model_source, prompt_field)
    checker.check(fixed, axes, has_prompts=prompt_entries is not None, row_inputs=row_inputs)
    if prompts is not None and prompt_entries is not None:
        checker.check_prompts(prompts, prompt_entries)
    source = _block_source(compiler, model_source)
    plan = BlockPlan(
        name=name,
        model_id=model_id,
        model=model,
        schema=schema,
        prompt_field=prompt_field,
        source=source,
        fixed=fixed,
        prompts=prompts,
        prompt_lines=_inline_lines(compiler, prompt_entries),
        prompt_inputs=row_inputs,
        prompt_rows=_prompt_rows(prompt_entries) if row_inputs else (),
        axes=axes,
        repeat=compiler.pick("repeat").value or 1,
        output_dir=_output_dir(compiler, name),
        file_name=_file_name(
            compiler,
            schema,
            fixed,
            axes,
            has_prompts=bool(prompt_entries),
            prompt=prompt_field,
            variants=[n for p in special if isinstance(p, VariantPrompt) for n in p.names],
        ),
        first_ordinal=first_ordinal,
        sample=_sample(compiler, prompts, grid, zipped, warnings),
        wildcard_texts=tuple(sorted(compiler.wildcards.texts.items())),
    )
    _check_max_jobs(compiler, plan)
    return plan


def _check_variants(
    prompts: Sequence[Prompt],
    variables: Mapping[str, _Written],
    grid: _Written,
    zipped: _Written,
) -> None:
    """Variant prompts' fields must be defined, and their picks' names free."""
    taken = {name: "vars" for name in variables}
    taken.update({name: "grid" for name in grid.value or {}})
    taken.update({name: "zip" for name in zipped.value or {}})
    check_variant_names(prompts, taken)
    for prompt in prompts:
        if isinstance(prompt, VariantPrompt):
            for name in sorted(prompt.fields - set(taken)):
                raise prompt.source.error(
                    f"undefined template variable {{{name}}}{did_you_mean(name, taken)}; "
                    "variables come from grid, zip and vars (write {{ and }} for literal braces)",
                    field="prompt",
                )


def _sample(
    compiler: _BlockCompiler,
    prompts: CompiledPrompts | None,
    grid: _Written,
    zipped: _Written,
    warnings: list[str],
) -> SampleRequest | None:
    written = compiler.pick("sample")
    if written.value is None:
        return None
    axis_keys = [[key] for key in grid.value or {}]
    axis_sizes = [len(values) for values in (grid.value or {}).values()]
    if zipped.value:
        axis_keys.append(list(zipped.value))
        axis_sizes.append(len(next(iter(zipped.value.values()))))
    return sample_request(
        written.value,
        prompts=prompts,
        axis_keys=axis_keys,
        axis_sizes=axis_sizes,
        where=compiler.source,
        path=written.path,
        warnings=warnings,
    )


def _check_max_jobs(compiler: _BlockCompiler, plan: BlockPlan) -> None:
    """A block's own ``max_jobs:`` refuses it when it would make more jobs."""
    if compiler.block is None or compiler.block.max_jobs is None:
        return
    limit = compiler.block.max_jobs
    if plan.job_count <= limit:
        return
    space = plan.space.size
    raise compiler.source((*compiler.block_path, "max_jobs")).error(
        f"block '{plan.name}' would make {plan.job_count:,} jobs (a space of {space:,} "
        f"combinations), more than its max_jobs of {limit:,}; draw fewer with sample: N, or "
        f"raise max_jobs",
        field="max_jobs",
    )


def _block_source(compiler: _BlockCompiler, model_source: Source) -> Source:
    return compiler.source(compiler.block_path) if compiler.block_path else model_source


def _model(
    compiler: _BlockCompiler, strict: bool, warnings: list[str], catalog: Catalog
) -> tuple[str, ModelSchema | None, Source]:
    written = compiler.pick("model")
    source = compiler.source(written.path if written.value is not None else compiler.block_path)
    if written.value is None:
        raise source.error(
            "is required: set the RunComfy model id at the top level or in "
            "this block, e.g. kling/kling-2-6/pro/text-to-video",
            field="model",
        )
    model_id = str(written.value)
    real = catalog.real_id(model_id)
    if real is not None:
        _warn(
            warnings,
            source.error(
                f"'{model_id}' is the model's page slug; its API id is '{real}', used instead",
                field="model",
            ),
        )
        model_id = real
    if not _MODEL_ID.fullmatch(model_id):
        raise source.error(
            f"'{model_id}' is not a model id like kling/kling-2-6/pro/text-to-video", field="model"
        )
    schema_file = compiler.pick("schema")
    where = compiler.source(schema_file.path) if schema_file.value is not None else None
    schema = resolve_model(
        model_id, catalog, schema_file.value, where=where, base_dir=compiler.base_dir
    )
    if schema is None:
        _no_schema(compiler, model_id, source, strict, warnings, catalog)
    return model_id, schema, source


def _no_schema(
    compiler: _BlockCompiler,
    model_id: str,
    source: Source,
    strict: bool,
    warnings: list[str],
    catalog: Catalog,
) -> None:
    """A model with no schema anywhere: refused, unless the block says ``validate: false``."""
    hint = did_you_mean(model_id, catalog.ids())
    if compiler.pick("validate").value is not False:
        raise source.error(
            f"unknown model '{model_id}'{hint}; paste its input schema from its API page into "
            "a JSON file and name it under schema:, or set validate: false to send the inputs "
            "unchecked",
            field="model",
        )
    if strict:
        raise source.error(
            f"unknown model '{model_id}'{hint} (strict mode refuses models genbatch does not "
            "know, even with validate: false)",
            field="model",
        )
    _warn(
        warnings,
        source.error(
            f"unknown model '{model_id}'{hint}; validate: false, so its inputs are sent "
            "unchecked and its cost is unknown unless prices: gives one",
            field="model",
        ),
    )


def _warn(warnings: list[str], warning: Exception) -> None:
    if str(warning) not in warnings:
        warnings.append(str(warning))


def _prompt_field(compiler: _BlockCompiler, model: ModelSchema | None, model_id: str) -> str:
    """The input ``prompts:`` fills: the block's ``prompt_field``, else the schema's text input."""
    written = compiler.pick("prompt_field")
    if written.value is None:
        return model.text_field if model is not None else "prompt"
    name = str(written.value)
    if model is not None and not model.accepts_name(name):
        known = ", ".join(model.fields)
        raise compiler.source(written.path).error(
            f"'{name}' is not an input of {model_id}{did_you_mean(name, model.fields)} "
            f"(known: {known})",
            field="prompt_field",
        )
    return name


def _prompt_rows(entries: PromptEntries | None) -> tuple[tuple[Any, ...], ...]:
    """Per prompt, the values of the inputs its row sets (``BlockPlan.prompt_rows``)."""
    if entries is None:
        return ()
    return tuple(tuple(value for _, value in entries.inputs(i)) for i in range(len(entries)))


def _inline_lines(
    compiler: _BlockCompiler, entries: PromptEntries | None
) -> tuple[int | None, ...]:
    """The lines of prompts written in the manifest (``BlockPlan.prompt_lines``)."""
    if entries is None or entries.file != compiler.document.file:
        return ()
    return tuple(entry.line for entry in entries)


def _prompt_entries(compiler: _BlockCompiler, model: ModelSchema | None) -> PromptEntries | None:
    written = compiler.pick("prompts")
    if written.value is None:
        return None
    if isinstance(written.value, PromptFileSpec):
        display_dir = os.path.dirname(compiler.document.file)
        return read_prompt_file(
            written.value,
            base_dir=compiler.base_dir,
            display_dir=display_dir,
            where=compiler.source((*written.path, "file")),
            allow_outside=compiler.top.allow_outside_prompt_files,
            input_specs=model.fields if model is not None else None,
        )
    if not written.value:
        raise compiler.source(written.path).error(
            "is empty, which would make no jobs; list at least one prompt", field="prompts"
        )
    lines = [compiler.document.line_of((*written.path, i)) for i in range(len(written.value))]
    return inline_prompts(written.value, compiler.document.file, lines)


def _compile_prompts(
    compiler: _BlockCompiler, entries: PromptEntries | None
) -> CompiledPrompts | None:
    return None if entries is None else compile_prompts(entries, compiler.wildcards)


def _compile_input_templates(
    compiler: _BlockCompiler, inputs: Mapping[str, _Written]
) -> dict[str, str | Template]:
    """The string inputs, each as a template or the literal it means."""
    return {
        name: compile_template(written.value, source=compiler.source(written.path), label=name)
        for name, written in inputs.items()
        if isinstance(written.value, str)
    }


def _check_defined(templates: Iterable[Template], defined: set[str]) -> None:
    for template in templates:
        for name in sorted(template.fields - defined):
            hint = did_you_mean(name, defined)
            raise template.source.error(
                f"undefined template variable {{{name}}}{hint}; variables come from grid, zip "
                "and vars (write {{ and }} for literal braces)",
                field=template.label,
            )


def _check_no_clashes(
    compiler: _BlockCompiler,
    inputs: Mapping[str, _Written],
    variables: Mapping[str, _Written],
    grid: _Written,
    zipped: _Written,
    prompts: PromptEntries | None,
    prompt_fields: tuple[str, ...],
) -> None:
    """A name may be set in only one of inputs, vars, grid, zip (and prompts for its field and
    the inputs its prompt file sets)."""
    seen: dict[str, tuple[str, Source]] = {}
    places: list[tuple[str, str, Path_]] = [
        *(("inputs", name, w.path) for name, w in inputs.items()),
        *(("vars", name, w.path) for name, w in variables.items()),
        *(("grid", name, (*grid.path, name)) for name in grid.value or {}),
        *(("zip", name, (*zipped.path, name)) for name in zipped.value or {}),
    ]
    if prompts is not None:
        path = compiler.pick("prompts").path
        places[:0] = [("prompts", name, path) for name in prompt_fields]
    for place, name, path in places:
        source = compiler.source(path)
        if name in seen:
            first_place, first = seen[name]
            raise source.error(
                f"is set both in {first_place} (line {first.line}) and in {place}; keep one",
                field=name,
            )
        seen[name] = (place, source)


class _AxisBuilder:
    """Turns grid keys and zip lists into fragments; knows which keys are only variables."""

    def __init__(
        self, compiler: _BlockCompiler, model: ModelSchema | None, referenced: set[str]
    ) -> None:
        self.compiler = compiler
        self.model = model
        self.referenced = referenced

    def is_input(self, key: str) -> bool:
        """A key is sent as an input unless templates use it and the model has no such input."""
        if key not in self.referenced:
            return True
        return self.model is not None and key in self.model.fields

    def grid_axes(self, grid: _Written) -> list[tuple[Fragment, ...]]:
        """One axis per grid key, in written order."""
        return [
            tuple(
                self._fragment({key: value}, {key: (*grid.path, key, i)})
                for i, value in enumerate(self._values(grid, key))
            )
            for key in grid.value or {}
        ]

    def zip_axis(self, zipped: _Written) -> list[tuple[Fragment, ...]]:
        """The zip lists advanced together as one axis of rows (none without ``zip:``)."""
        keys = list(zipped.value or {})
        if not keys:
            return []
        columns = [self._values(zipped, key) for key in keys]
        for key, column in zip(keys[1:], columns[1:], strict=True):
            if len(column) != len(columns[0]):
                raise self.compiler.source((*zipped.path, key)).error(
                    f"has {len(column)} values but '{keys[0]}' has {len(columns[0])}; zip lists "
                    "must have the same length",
                    field=f"zip.{key}",
                )
        return [
            tuple(
                self._fragment(
                    {key: column[row] for key, column in zip(keys, columns, strict=True)},
                    {key: (*zipped.path, key, row) for key in keys},
                )
                for row in range(len(columns[0]))
            )
        ]

    def _values(self, written: _Written, key: str) -> list[Any]:
        values: list[Any] = written.value[key]
        if not values:
            raise self.compiler.source((*written.path, key)).error(
                "is an empty list, which would make no jobs",
                field=render_path((written.path[-1], key)),
            )
        return values

    def _fragment(self, values: dict[str, Any], paths: dict[str, Path_]) -> Fragment:
        sources = {key: self.compiler.source(path) for key, path in paths.items()}
        inputs = {key: value for key, value in values.items() if self.is_input(key)}
        return Fragment(inputs=inputs, variables=values, sources=sources)


def _fixed_fragment(
    compiler: _BlockCompiler,
    inputs: Mapping[str, _Written],
    variables: Mapping[str, _Written],
    compiled: Mapping[str, str | Template],
) -> Fragment:
    literal = {
        name: compiled.get(name, written.value)
        for name, written in inputs.items()
        if not isinstance(compiled.get(name), Template)
    }
    sources = {name: compiler.source(w.path) for name, w in (*inputs.items(), *variables.items())}
    return Fragment(
        inputs=literal,
        variables={name: written.value for name, written in variables.items()},
        sources=sources,
        templates=tuple(t for t in compiled.values() if isinstance(t, Template)),
    )


class _StaticChecker:
    """Checks a block's fixed and axis values against the model schema, once each."""

    def __init__(
        self, model_id: str, model: ModelSchema | None, model_source: Source, prompt_field: str
    ) -> None:
        self.model_id = model_id
        self.model = model
        self.model_source = model_source
        self.prompt_field = prompt_field

    def check(
        self,
        fixed: Fragment,
        axes: Iterable[tuple[Fragment, ...]],
        *,
        has_prompts: bool,
        row_inputs: Iterable[str] = (),
    ) -> None:
        """Raise ``ManifestError`` at the first value, name or missing input that is wrong."""
        names = {*fixed.inputs, *(t.label for t in fixed.templates), *row_inputs}
        if has_prompts:
            names.add(self.prompt_field)
        for template in fixed.templates:
            self._check_name(template.label, template.source)
        for fragment in (fixed, *(f for axis in axes for f in axis)):
            names.update(fragment.inputs)
            for name, value in fragment.inputs.items():
                self._check_value(name, value, fragment.sources[name], axis=fragment is not fixed)
        if self.model is not None:
            self._check_required(names)

    def check_prompts(self, prompts: Sequence[Prompt], entries: PromptEntries) -> None:
        """Check the prompts that are plain text, and the inputs their rows set; templates are
        checked once rendered. A prompt's entry is made only for the error."""
        field = self.prompt_field
        for index, prompt in enumerate(prompts):
            if isinstance(prompt, str) and self._fails(field, prompt):
                self._check_value(field, prompt, entries[index].source)
            for name, value in entries.inputs(index):
                if self._fails(name, value):
                    self._check_value(name, value, entries[index].source)

    def _fails(self, name: str, value: Any) -> bool:
        """Whether ``_check_value`` raises for ``value`` (wherever it was written)."""
        if value is None:
            return True
        model = self.model
        return model is not None and (
            not model.accepts_name(name) or model.value_problem(name, value) is not None
        )

    def _check_name(self, name: str, source: Source, *, axis: bool = False) -> None:
        if self.model is not None and not self.model.accepts_name(name):
            known = ", ".join(self.model.fields)
            # A grid/zip key is an input only because no template uses it: say so.
            unused = f" and no template uses {{{name}}}" if axis else ""
            raise source.error(
                f"is not an input of {self.model_id}{did_you_mean(name, self.model.fields)}"
                f"{unused} (known: {known})",
                field=name,
            )

    def _check_value(self, name: str, value: Any, source: Source, *, axis: bool = False) -> None:
        if value is None:
            raise source.error("has no value; write one, or remove the key", field=name)
        self._check_name(name, source, axis=axis)
        problem = self.model.value_problem(name, value) if self.model is not None else None
        if problem is not None:
            raise source.error(problem.message, field=problem.field)

    def _check_required(self, names: set[str]) -> None:
        assert self.model is not None
        for name in self.model.required:
            if name not in names:
                where = "prompts:" if name == self.prompt_field else f"inputs: {{{name}: ...}}"
                raise self.model_source.error(
                    f"is required by {self.model_id}; add {where}", field=name
                )


def _output_dir(compiler: _BlockCompiler, name: str) -> str:
    """The block's own ``output.dir``; else, under ``jobs:``, a folder named after the block in
    the inherited one, so blocks are siblings: a dataset loader reading one block's folder
    reads every file below it, and an image block inside a video block's folder mixes them."""
    written = compiler.output("dir")
    text = written.value or os.path.join("out", sanitize_file_stem(compiler.run_name))
    directory = compiler.base_dir / os.path.expanduser(text)
    if compiler.block_path and written.path[: len(compiler.block_path)] != compiler.block_path:
        directory = directory / sanitize_file_stem(name)
    return os.path.normpath(directory)


def _warn_nested_folders(plans: list[BlockPlan], warnings: list[str]) -> None:
    """A block whose own ``output.dir`` lies inside another block's folder gets a warning:
    the dataset loaders read that folder's files and the nested ones together."""
    for inner in plans:
        for outer in plans:
            if Path(inner.output_dir).is_relative_to(outer.output_dir) and (
                inner.output_dir != outer.output_dir
            ):
                _warn(
                    warnings,
                    inner.source.error(
                        f"block '{inner.name}' writes into {inner.output_dir}, inside the "
                        f"folder of block '{outer.name}': a dataset loader reading that folder "
                        "reads both; give the blocks sibling folders",
                        field="output.dir",
                    ),
                )


def _file_name(
    compiler: _BlockCompiler,
    model: ModelSchema | None,
    fixed: Fragment,
    axes: Iterable[tuple[Fragment, ...]],
    *,
    has_prompts: bool,
    prompt: str,
    variants: Iterable[str] = (),
) -> FileNameTemplate:
    written = compiler.output("name")
    source = compiler.source(written.path)
    text = written.value or DEFAULT_FILE_NAME_TEMPLATE
    template = compile_file_name_template(text, file=source.file, line=source.line)
    if "/" in text or "\\" in text:
        raise source.error(
            "must not contain / or \\ (a file name cannot create folders; use output.dir)",
            field="output.name",
        )
    available = {
        *BUILTIN_FILE_FIELDS,
        *fixed.inputs,
        *fixed.variables,
        *(t.label for t in fixed.templates),
    }
    if not has_prompts and prompt not in (*fixed.inputs, *(t.label for t in fixed.templates)):
        available.discard("prompt")  # only a grid of prompts is left, added just below
    available.update(k for axis in axes for k in (*axis[0].inputs, *axis[0].variables))
    available.update(variants)
    if model is not None:
        available.update(model.defaults)
    for name in template.fields:
        if name not in available:
            raise source.error(
                f"unknown field {{{name}}}{did_you_mean(name, available)}; "
                f"fields: {', '.join(sorted(available))}",
                field="output.name",
            )
    return template
