"""A manifest's top level, read and checked without compiling its blocks: what a command that
only reads the ledger needs (the run's name), and what to ask the API's catalog for.

Compiling the blocks reads every prompt file and loads the catalog and jsonschema; a
100,000-prompt manifest took seconds to compile for ``genbatch status`` to learn its name.
"""

from __future__ import annotations

import os
from pathlib import Path

from genbatch.errors import ManifestError
from genbatch.manifest.reading import FileRefused, read_regular_file
from genbatch.manifest.schema import ManifestSpec, parse_manifest_spec
from genbatch.manifest.yaml_loader import MAX_MANIFEST_BYTES, YamlDocument, decode_text, load_yaml


def run_name_of(path: str | os.PathLike[str]) -> str:
    """The name of a manifest's run (``Manifest.name``): its ``name:``, else its file's stem.
    A manifest that cannot be read or parsed raises the one-line ``ManifestError``
    ``load_manifest`` would."""
    display = os.fspath(path)
    return read_top_level(path)[1].name or Path(os.path.abspath(display)).stem


def read_top_level(path: str | os.PathLike[str]) -> tuple[bytes, ManifestSpec, YamlDocument]:
    """The manifest's bytes, its top level checked, and the document it parsed to."""
    display = os.fspath(path)
    raw = read_manifest_bytes(Path(os.path.abspath(display)), display)
    document = load_yaml(decode_text(raw, display), display)
    return raw, parse_manifest_spec(document), document


def read_manifest_bytes(path: Path, display: str) -> bytes:
    """The manifest file's bytes; ``ManifestError`` when it cannot be read."""
    try:
        return read_regular_file(path, limit=MAX_MANIFEST_BYTES, what="a manifest file")
    except FileRefused as why:
        raise ManifestError(str(why), file=display) from None
    except FileNotFoundError:
        raise ManifestError("manifest not found", file=display) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ManifestError(f"cannot read the manifest: {reason}", file=display) from None
