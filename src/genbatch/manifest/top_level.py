"""A manifest read without compiling it: its bytes, its YAML document, its run's name.

Compiling a manifest reads every prompt file and loads the catalog, jsonschema and the
schema's pydantic models; a 100,000-prompt manifest took seconds to compile for
``genbatch status`` to learn its run's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from genbatch.errors import ManifestError
from genbatch.manifest.reading import FileRefused, read_regular_file
from genbatch.manifest.yaml_loader import MAX_MANIFEST_BYTES, YamlDocument, decode_text, load_yaml


def run_name_of(path: str | os.PathLike[str]) -> str:
    """The name of a manifest's run (``Manifest.name``): its ``name:``, else its file's stem.

    Only the name is read (the rest is for ``run`` and ``plan`` to check): what the commands
    that read the ledger need. A manifest that cannot be read or parsed, or whose name is not a
    text, raises the one-line ``ManifestError`` ``load_manifest`` would.
    """
    display = os.fspath(path)
    absolute = Path(display).resolve()  # a link's target: where its ledger and files are
    document = read_document(absolute, display)[1]
    if isinstance(document.data, dict):
        name = document.data.get("name")
        if name is None:  # absent, or left empty
            return absolute.stem
        if isinstance(name, str) and name:
            return name
    # Not a mapping, or a name that is not a text: the schema's own error. Imported here: its
    # pydantic models take longer to build than the rest of this read.
    from genbatch.manifest.schema import parse_manifest_spec

    return parse_manifest_spec(document).name or absolute.stem


def read_document(path: Path, display: str) -> tuple[bytes, YamlDocument]:
    """The manifest file's bytes and the YAML document they hold (not yet checked)."""
    raw = read_manifest_bytes(path, display)
    return raw, load_yaml(decode_text(raw, display), display)


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
