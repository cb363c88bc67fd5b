"""The dataset formats of ``genbatch export``: their options checked before the ledger is
read, then the write and the line that says what was written."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbatch.errors import UsageError

PARQUET, WEBDATASET, HF = "parquet", "webdataset", "hf"
DATASET_FORMATS = (PARQUET, WEBDATASET, HF)

Rows = Callable[[], Iterable[dict[str, Any]]]


@dataclass(frozen=True, kw_only=True)
class DatasetRequest:
    """A dataset export asked for, its options checked."""

    format: str
    output: Path
    embed: bool
    shard_size: int


def dataset_request(
    output_format: str, output: Path | None, *, all_states: bool, embed: bool, shard_size: str
) -> DatasetRequest | None:
    """The dataset export asked for (None for jsonl and csv); a usage error for options that
    do not go together, or a missing library, before anything is read or written."""
    if embed and output_format != PARQUET:
        raise UsageError("--embed goes with --format parquet")
    if output_format not in DATASET_FORMATS:
        return None
    if output is None:
        what = "FILE" if output_format == PARQUET else "FOLDER"
        raise UsageError(f"--format {output_format} needs --output {what}")
    if all_states and output_format != PARQUET:
        raise UsageError(
            f"--all-states: jobs that are not done have no file to put in a --format "
            f"{output_format} export; use --format parquet, jsonl or csv"
        )
    if output_format == PARQUET:
        from genbatch.dataset import require

        require("pyarrow.parquet", needed_by="--format parquet")
    return DatasetRequest(
        format=output_format, output=output, embed=embed, shard_size=_size(shard_size)
    )


def write_dataset(request: DatasetRequest, rows: Rows, manifests: dict[str, str]) -> str:
    """Write the dataset; what was written, in a few words."""
    from genbatch import dataset

    if request.format == PARQUET:
        parquet = dataset.write_parquet(rows, request.output, embed=request.embed)
        return f"{parquet.rows} row(s) written to {request.output}" + _missing(parquet.missing)
    if request.format == WEBDATASET:
        shards = dataset.write_webdataset(rows(), request.output, shard_size=request.shard_size)
        return (
            f"{shards.samples} sample(s) in {shards.shards} shard(s) written to "
            f"{request.output}" + _missing(shards.missing)
        )
    folders = dataset.write_hf_folders(rows, request.output, manifests=manifests)
    counts = ", ".join(f"{n} in {kind}/" for kind, n in folders.files.items()) or "no file"
    return f"{counts}, written to {request.output}" + _missing(folders.missing)


def _size(text: str) -> int:
    try:
        from genbatch.manifest.settings import parse_size  # the manifest loader: on use

        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--shard-size: {exc}") from None


def _missing(count: int) -> str:
    return f" ({count} file(s) not on disk, left out)" if count else ""
