"""Dataset exports of a run's outputs: Parquet, WebDataset shards, Hugging Face folders.

Each format consumes the rows of ``genbatch.export.ledger_export_rows``, so every column the
export has (inputs, variables, request id, sha256, cost, the review's rating) is carried along.

    columns.py      one Arrow type per column, for Parquet and the HF metadata
    files.py        the file behind each row, its kind, each generation once
    folder.py       a dataset folder replaced whole, never a folder of the user's
    parquet.py      --format parquet (needs pyarrow: genbatch[dataset])
    webdataset.py   --format webdataset (tarfile only)
    hf.py, card.py  --format hf and its dataset card
"""

from __future__ import annotations

from genbatch.dataset.extra import INSTALL_HINT, require
from genbatch.dataset.hf import HfReport, write_hf_folders
from genbatch.dataset.parquet import BYTES_COLUMN, PATH_COLUMN, ParquetReport, write_parquet
from genbatch.dataset.webdataset import (
    DEFAULT_SHARD_SIZE,
    WebDatasetReport,
    write_webdataset,
)

__all__ = [
    "BYTES_COLUMN",
    "DEFAULT_SHARD_SIZE",
    "INSTALL_HINT",
    "PATH_COLUMN",
    "HfReport",
    "ParquetReport",
    "WebDatasetReport",
    "require",
    "write_hf_folders",
    "write_parquet",
    "write_webdataset",
]
