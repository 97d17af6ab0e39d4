"""The shape the code keeps where import contracts cannot say it: packages for the layers, small
units, one error tree."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import checkout_sweeper
from checkout_sweeper import errors

PACKAGE = Path(checkout_sweeper.__file__).resolve().parent
MAX_TOP_LEVEL_MODULES = 10


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]


def test_no_class_over_150_lines_and_no_function_over_60():
    too_long = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            limit = {ast.ClassDef: 150, ast.FunctionDef: 60}.get(type(node))
            if limit and _length(node) > limit:
                too_long.append(f"{path.relative_to(PACKAGE)}:{node.name} {_length(node)}")  # type: ignore[attr-defined]
    assert too_long == []


def test_the_top_level_holds_only_what_every_layer_shares():
    """Import contracts (``lint-imports``) keep the layers apart; this keeps them packages."""
    top_level = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level


def test_every_error_class_is_in_the_one_tree():
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__:
            assert issubclass(cls, errors.SweeperError), cls
    defined_elsewhere = []
    for path, tree in _modules():
        if path.name == "errors.py" or "fake_stripe" in path.parts:
            continue  # the fake is Stripe's side of the wire, with Stripe's own errors
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id.endswith(("Error", "Exception"))
                for base in node.bases
            ):
                defined_elsewhere.append(f"{path.name}:{node.name}")
    assert defined_elsewhere == []


def _error_classes() -> list[type[errors.SweeperError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.SweeperError)
    ]


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: how many letters to change, add or drop to turn a into b."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def test_every_error_says_its_http_status_and_exit_code():
    for cls in _error_classes():
        assert 400 <= cls.http_status < 600, cls
        assert cls.exit_code in set(errors.ExitCode), cls


def test_no_two_error_names_are_two_letters_apart_or_less():
    names = [cls.__name__ for cls in _error_classes()]
    assert _edits("SweepError", "SweeperError") == 2
    close = [(a, b) for a in names for b in names if a < b and _edits(a, b) <= 2]
    assert close == []
