"""The size of the ledger/runner layer (issue 12): physical lines and code lines, at any commit.

A code line holds at least one token that is not a comment, a docstring or whitespace (a
docstring is any string literal that is a statement on its own, so attribute docstrings count as
documentation too). Files are read from git, so a baseline commit needs no checkout:

    python benchmarks/layer_lines.py [REV ...]     # default: the working tree

``manifest/layouts.py`` (85 lines at the baseline, 1c5355fb) was counted in the layer when
issue 12 was filed; it is the manifest's now, and left out of every count here.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
import tokenize
from pathlib import Path

LAYER = (
    "src/genbatch/ledger/",
    "src/genbatch/runner.py",
    "src/genbatch/group_commit.py",
    "src/genbatch/file_commits.py",
    "src/genbatch/states.py",
    "src/genbatch/lifecycle.py",
)
FEATURES_SINCE = (
    "catalog_cache.py",
    "history.py",
    "metadata_marks.py",
    "ratings.py",
    "sqlite_file.py",
)
"""Ledger modules for features added after the baseline (1c5355fb), reported apart: the model
catalog kept offline, generation times for polling (issue 16), metadata.jsonl appended (16),
ratings (review), the SQLite file's safety (issue 14: created whole, refused when damaged,
quick_check unless closed cleanly; split out of engine.py, which kept its baseline part)."""
SKIPPED = frozenset(
    (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
)


def docstring_lines(source: str) -> set[int]:
    """The lines of string literals that stand alone as a statement."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Expr) or node.end_lineno is None:
            continue
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    """Lines that carry code: a token other than a comment, a docstring or layout."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in SKIPPED and token.type != tokenize.ENDMARKER:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines(source))


def layer_files(rev: str | None) -> dict[str, str]:
    """The layer's Python files at ``rev`` (the working tree when None), path -> source."""
    if rev is None:
        paths = [str(p) for p in Path("src/genbatch").rglob("*.py")]
        return {p: Path(p).read_text() for p in sorted(paths) if p.startswith(LAYER)}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", rev, "src/genbatch"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        p: subprocess.run(
            ["git", "show", f"{rev}:{p}"], check=True, capture_output=True, text=True
        ).stdout
        for p in listing
        if p.endswith(".py") and p.startswith(LAYER)
    }


def report(rev: str | None) -> None:
    """Print each file's physical and code lines, the total, and the total without the features."""
    files = layer_files(rev)
    rows = [(p, s.count("\n"), code_lines(s)) for p, s in files.items()]
    print(f"{rev or 'working tree'}: physical, code")
    for path, physical, code in rows:
        print(f"  {physical:6} {code:6}  {path}")
    core = [r for r in rows if Path(r[0]).name not in FEATURES_SINCE or "ledger/" not in r[0]]
    print(f"  {sum(r[1] for r in rows):6} {sum(r[2] for r in rows):6}  total")
    features = ", ".join(FEATURES_SINCE)
    print(f"  {sum(r[1] for r in core):6} {sum(r[2] for r in core):6}  total without {features}")


if __name__ == "__main__":
    for rev in sys.argv[1:] or [None]:
        report(rev)
