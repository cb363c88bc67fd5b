"""``load_manifest``: a YAML manifest read, checked and ready to expand into jobs."""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path

from genbatch import __version__
from genbatch.catalog import Catalog, ModelSchema, Price, page_slugs
from genbatch.errors import ManifestError
from genbatch.jobs import JobSpec, canonical_json
from genbatch.manifest.blocks import BlockPlan, compile_blocks
from genbatch.manifest.expand import EXPANSION_VERSION, PLAIN_FIELDS, expand_block
from genbatch.manifest.keys import KeySet
from genbatch.manifest.sampling import SampleRequest
from genbatch.manifest.schema import ManifestSpec, parse_manifest_spec
from genbatch.manifest.settings import DEFAULT_MAX_JOBS, ManifestSettings
from genbatch.manifest.top_level import read_document
from genbatch.manifest.yaml_loader import YamlDocument

REHEARSAL_FOLDER = "simulated"
"""The folder, inside each output folder, where a ``--simulate`` rehearsal writes its files."""

__all__ = ["BlockSummary", "Manifest", "load_manifest", "model_ids_of"]


@dataclass(frozen=True, kw_only=True)
class BlockSummary:
    """One block of a manifest, for plans and reports."""

    name: str
    model_id: str
    known_model: bool
    """Whether the jobs were checked against a schema (false: ``validate: false``)."""
    schema_source: str
    """Where the schema came from: ``schema file x.json``, ``catalog (fetched ...)``,
    ``bundled with genbatch``, or ``none``."""
    job_count: int
    output_dir: str
    line: int | None
    space_size: int = 0
    """Combinations of the block's full expansion (its job count unless it samples)."""
    sample: SampleRequest | None = None
    """What ``sample:`` asks for (n, seed, strategy), or None for the full expansion."""
    variables: tuple[str, ...] = ()
    """The variables its prompts' variants and wildcards set."""


class Manifest:
    """A loaded manifest: its settings, and its jobs expanded lazily in a deterministic order.

    Made by ``load_manifest``. Everything that can be checked without expanding every job was
    checked on load; ``validate()`` checks the rest (rendered templates, file names, duplicates).
    """

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        concurrency: int | None,
        settings: ManifestSettings,
        warnings: list[str],
        blocks: list[BlockPlan],
        digest: str = "",
        catalog: Catalog | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.concurrency = concurrency
        self.settings = settings
        self.warnings = warnings
        self._blocks = blocks
        self.job_count = sum(block.job_count for block in blocks)
        """Number of jobs, computed from the sizes of prompts, grid, zip and repeat."""
        self.digest = digest
        self.catalog = catalog or Catalog()
        """The catalog the models were looked up in (the API's entries it was loaded with)."""
        """A hash of everything the jobs depend on (see ``load_manifest``): equal digests,
        equal jobs. Prices are not in it."""

    def rehearsal(self) -> Manifest:
        """This manifest as ``--simulate`` runs it: every block writes into a ``simulated``
        folder inside its own, so a rehearsal's placeholder files never stand where a real
        run's go (its ledger is apart too: see ``batch.rehearsal_location``)."""
        copied = copy.copy(self)
        copied._blocks = [
            replace(block, output_dir=str(Path(block.output_dir) / REHEARSAL_FOLDER))
            for block in self._blocks
        ]
        return copied

    @property
    def blocks(self) -> tuple[BlockSummary, ...]:
        """The blocks in order (one named ``main`` when the manifest has no ``jobs:``)."""
        return tuple(
            BlockSummary(
                name=b.name,
                model_id=b.model_id,
                known_model=b.model is not None,
                schema_source=b.schema.origin if b.schema is not None else "none",
                job_count=b.job_count,
                output_dir=b.output_dir,
                line=b.source.line,
                space_size=b.space.size,
                sample=b.sample,
                variables=b.variant_names,
            )
            for b in self._blocks
        )

    @property
    def schemas(self) -> dict[str, ModelSchema]:
        """The schema found for each model of the manifest (checked against or not)."""
        return {b.model_id: b.schema for b in self._blocks if b.schema is not None}

    def jobs(self) -> Iterator[JobSpec]:
        """Every job in expansion order; a job whose inputs break the model's schema raises
        ``ManifestError`` naming the file, line and field of the offending value."""
        for block in self._blocks:
            yield from expand_block(block)

    def validated_jobs(self) -> Iterator[JobSpec]:
        """``jobs()``, each also checked against the jobs before it, in the same single walk.

        Beyond what ``jobs()`` checks, refuses two identical jobs (same model, inputs and
        repeat index, hence the same key) and two jobs writing the same file, at the second one.
        """
        keys = KeySet(self.job_count)
        stems: dict[str, set[str]] = {}
        for block in self._blocks:
            # A name holding {key} and only fields that cannot collide is unique already.
            fields = block.file_name.fields
            plain_stems = "key" in fields and PLAIN_FIELDS.issuperset(fields)
            folder = stems.setdefault(block.output_dir, set())
            for job in expand_block(block):
                if not keys.add(int(job.key, 16)):
                    raise self._duplicate(job, block, _same_key(job))
                if not plain_stems:
                    stem = job.file_stem.casefold()
                    if stem in folder:
                        raise self._duplicate(job, block, _same_file(job))
                    folder.add(stem)
                yield job

    def validate(self) -> int:
        """Expand every job once and check it as ``validated_jobs()`` does; return how many."""
        return sum(1 for _ in self.validated_jobs())

    def _duplicate(
        self, job: JobSpec, block: BlockPlan, same: Callable[[JobSpec], bool]
    ) -> ManifestError:
        """The error for ``job``, which repeats an earlier job (found again by walking)."""
        # The first of the two is looked for again rather than remembered for every job: a
        # million ordinals would cost more memory than this walk costs time, once.
        first = next(other for other in self.jobs() if same(other))
        if first.key == job.key:
            what = "the same model, inputs and repeat index"
            hint = "use repeat: for more samples of the same inputs"
        else:
            what = f"the same file name '{job.file_stem}'"
            hint = "add {index} or {key} to output.name"
        return ManifestError(
            f"job {job.ordinal} has {what} as job {first.ordinal}; {hint}",
            file=block.source.file,
            line=job.source_line,
        )

    def __repr__(self) -> str:
        return (
            f"Manifest(path={str(self.path)!r}, name={self.name!r}, "
            f"job_count={self.job_count}, blocks={[b.name for b in self._blocks]!r})"
        )


def _same_key(job: JobSpec) -> Callable[[JobSpec], bool]:
    return lambda other: other.key == job.key


def _same_file(job: JobSpec) -> Callable[[JobSpec], bool]:
    stem = job.file_stem.casefold()
    return lambda other: other.output_dir == job.output_dir and other.file_stem.casefold() == stem


def load_manifest(
    path: str | os.PathLike[str],
    *,
    strict_models: bool = False,
    max_jobs: int | None = None,
    catalog: Catalog | None = None,
) -> Manifest:
    """Read and check the manifest at ``path``.

    ``strict_models`` refuses ``validate: false`` for models with no schema (as ``strict: true``
    does); ``max_jobs`` overrides the explosion guard (the manifest's ``max_jobs:``, else
    100,000); ``catalog`` holds what the API's catalog said of the models (the ledger's cache),
    else only the bundled snapshot is known. Every problem raises a one-line ``ManifestError``
    naming the file, line and field.
    """
    display = os.fspath(path)
    # A symbolic link to a manifest is the manifest: its folder (the ledger found from it, the
    # output and prompt files) and its name are the target's, wherever the link is.
    absolute = Path(display).resolve()
    raw, document = read_document(absolute, display)
    spec = parse_manifest_spec(document)
    run_name = spec.name or absolute.stem
    blocks, warnings = compile_blocks(
        document,
        spec,
        base_dir=absolute.parent,
        run_name=run_name,
        strict=strict_models or spec.strict,
        catalog=catalog or Catalog(),
    )
    manifest = Manifest(
        path=absolute,
        name=run_name,
        concurrency=spec.concurrency,
        settings=_settings(spec),
        warnings=warnings,
        blocks=blocks,
        digest=_digest(raw, absolute, blocks, strict_models=strict_models, max_jobs=max_jobs),
        catalog=catalog,
    )
    _guard_explosion(manifest, document, spec, max_jobs)
    return manifest


def model_ids_of(path: str | os.PathLike[str]) -> set[str]:
    """The model ids a manifest names (page slugs as their real ids), read without compiling
    it: what to ask the API's catalog for before loading. A manifest that cannot be read or
    parsed raises the one-line ``ManifestError`` ``load_manifest`` would."""
    display = os.fspath(path)
    spec = parse_manifest_spec(read_document(Path(display).resolve(), display)[1])
    written = {block.model for block in spec.jobs or ()} | {spec.model}
    slugs = page_slugs()
    return {slugs.get(model_id, model_id) for model_id in written if model_id}


def _digest(
    raw: bytes, path: Path, blocks: list[BlockPlan], *, strict_models: bool, max_jobs: int | None
) -> str:
    """What the jobs are made from: the manifest's bytes and path, the prompts (some come from
    prompt files), the folders (``~`` expanded), the models' schemas, the options, the code."""
    digest = hashlib.sha256()
    header = (EXPANSION_VERSION, __version__, str(path), strict_models, max_jobs)
    for part in (repr(header).encode(), raw):
        digest.update(len(part).to_bytes(8, "big") + part)
    for block in blocks:
        # The canonical JSON of [name, folder, model, [prompt texts], rows(, wildcards)], fed
        # to the hash in pieces: a prompt file's texts are never all one string at once.
        head = canonical_json((block.name, block.output_dir, repr(block.model)))
        digest.update(f"{head[:-1]},[".encode())
        texts = (p if isinstance(p, str) else p.text for p in block.prompts or ())
        for number, chunk in enumerate(_chunks(texts, _DIGEST_CHUNK)):
            digest.update(("," if number else "").encode() + canonical_json(chunk)[1:-1].encode())
        tail: tuple[object, ...] = (block.prompt_rows,)
        if block.wildcard_texts:
            tail += (block.wildcard_texts,)
        digest.update(f"],{canonical_json(tail)[1:]}".encode())
    return digest.hexdigest()


_DIGEST_CHUNK = 10_000
"""Prompt texts encoded together for the digest."""


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _settings(spec: ManifestSpec) -> ManifestSettings:
    return ManifestSettings(
        max_jobs=spec.max_jobs,
        strict=spec.strict,
        allowed_hosts=tuple(spec.allowed_hosts or ()),
        max_file_size=spec.max_file_size,
        max_attempts=spec.max_attempts,
        budget_usd=spec.budget_usd,
        prices={
            model_id: Price(
                base_price_usd=p.base_price_usd,
                price_unit=p.price_unit,
                audio_multiplier=p.audio_multiplier,
            )
            for model_id, p in (spec.prices or {}).items()
        },
    )


def _guard_explosion(
    manifest: Manifest, document: YamlDocument, spec: ManifestSpec, max_jobs: int | None
) -> None:
    limit = max_jobs or spec.max_jobs or DEFAULT_MAX_JOBS
    if manifest.job_count <= limit:
        return
    field = "max_jobs" if spec.max_jobs and not max_jobs else None
    line = document.line_of(("max_jobs",)) if field else _biggest_block_line(manifest)
    raise ManifestError(
        f"this manifest would make {manifest.job_count:,} jobs, more than the limit of "
        f"{limit:,}; if that is intended, set max_jobs: {manifest.job_count} in the manifest "
        f"(or pass --max-jobs {manifest.job_count})",
        file=document.file,
        line=line,
        field=field,
    )


def _biggest_block_line(manifest: Manifest) -> int | None:
    return max(manifest.blocks, key=lambda block: block.job_count).line
