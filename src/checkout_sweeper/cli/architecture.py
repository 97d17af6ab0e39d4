"""The README's map of the package, written from the modules' own docstrings.

Every module's path and the first sentence of its docstring, package by package in layer order.

``cog -r README.md`` pastes ``architecture()`` into the README's Architecture section and CI runs
``cog --check``, so a module added, renamed or removed cannot be missing from the README. The
modules are read as text, never imported; one without a docstring stops the generator.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import checkout_sweeper

ROOT = Path(checkout_sweeper.__file__).resolve().parent
WIDTH = 100
# top to bottom, as the import contracts in pyproject.toml order them; a package not named here
# is listed after these, and the shared modules at the top come last
LAYERS = ("cli", "web", "runs", "stripe_api", "store", "engine", "fake_stripe")
# Alembic's directory: its packages are bare, and its revisions are summed up in one line
MIGRATIONS = "store/migrations/"
MIGRATIONS_SUMMARY = "Alembic migrations: one module per schema revision in `versions/`"
NO_BREAK = "\x00"


class Entry(NamedTuple):
    """One line of the map: ``runs/lease.py``, or ``runs/`` for a package's ``__init__``."""

    path: str
    summary: str


def architecture(root: Path = ROOT) -> str:
    """The map: one group per package, its ``__init__`` first, wrapped at ``WIDTH`` columns."""
    found = entries(root)
    column = max(len(entry.path) for entry in found) + 2
    groups: dict[str, list[Entry]] = {}
    for entry in found:
        groups.setdefault(_package(entry.path), []).append(entry)
    blocks = []
    for package in sorted(groups, key=_layer_order):
        lines = []
        for path, summary in sorted(groups[package]):
            wrapped = _wrap(summary, WIDTH - column)
            lines.append(path.ljust(column) + wrapped[0])
            lines += [" " * column + more for more in wrapped[1:]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def entries(root: Path = ROOT) -> list[Entry]:
    """Every module under ``root`` with its summary; ``ValueError`` names the undocumented."""
    found: list[Entry] = []
    undocumented: list[str] = []
    for file in sorted(root.rglob("*.py")):
        relative = file.relative_to(root).as_posix()
        path = relative.removesuffix("__init__.py") if "/" in relative else relative
        if path == MIGRATIONS:
            found.append(Entry(path, MIGRATIONS_SUMMARY))
            continue
        if path.startswith(MIGRATIONS + "versions/"):
            continue
        summary = first_sentence(ast.get_docstring(ast.parse(file.read_text())) or "")
        if summary:
            found.append(Entry(path, summary))
        else:
            undocumented.append(relative)
    if undocumented:
        raise ValueError(
            "modules without a docstring (its first sentence says what the module is for): "
            + ", ".join(undocumented)
        )
    return found


def first_sentence(docstring: str) -> str:
    """The docstring's first sentence on one line, without its full stop; ``code`` as `code`."""
    paragraph = " ".join(docstring.strip().split("\n\n")[0].split())
    sentence = paragraph.rstrip(".")
    for stop in re.finditer(r"\.(?=\s)", paragraph):
        before = paragraph[: stop.start()]
        if before.count("``") % 2 == 0 and not before.endswith(("e.g", "i.e")):
            sentence = before
            break
    return sentence.replace("``", "`")


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` columns, never broken inside a `code` span."""
    joined = re.sub(r"`[^`]*`", lambda code: code[0].replace(" ", NO_BREAK), text)
    lines = textwrap.wrap(joined, width, break_long_words=False, break_on_hyphens=False)
    return [line.replace(NO_BREAK, " ") for line in lines]


def _package(path: str) -> str:
    """The top-level package a path belongs to; ``""`` for the shared modules at the top."""
    return path.split("/")[0] if "/" in path else ""


def _layer_order(package: str) -> tuple[int, str]:
    if package in LAYERS:
        return LAYERS.index(package), package
    return (len(LAYERS) + 1, package) if package == "" else (len(LAYERS), package)
