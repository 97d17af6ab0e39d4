"""The shape the code keeps: small units, the engine free of frameworks, one error tree."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import checkout_sweeper
from checkout_sweeper import errors

PACKAGE = Path(checkout_sweeper.__file__).resolve().parent
ENGINE = [
    "sweep",
    "walker",
    "expirer",
    "retry",
    "tally",
    "stop",
    "gateway",
    "pacing",
    "headroom",
    "config",
]
FORBIDDEN = {"stripe", "flask", "sqlalchemy", "werkzeug"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(PACKAGE.rglob("*.py"))]


def _length(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1  # type: ignore[attr-defined, operator]


def test_no_class_over_150_lines_and_no_function_over_60():
    too_long = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            limit = {ast.ClassDef: 150, ast.FunctionDef: 60}.get(type(node))
            if limit and _length(node) > limit:
                too_long.append(f"{path.relative_to(PACKAGE)}:{node.name} {_length(node)}")
    assert too_long == []


@pytest.mark.parametrize("name", ENGINE)
def test_the_engine_and_settings_import_no_sdk_framework_or_database(name):
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0] if node.level == 0 else "")
            if node.level and node.module in ("stripe_api", "db", "models", "app"):
                imported.add(node.module)
    assert not imported & (FORBIDDEN | {"stripe_api", "db", "models", "app"})


def test_only_the_gateway_imports_stripe():
    importers = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(name.split(".")[0] == "stripe" for name in names):
                importers.append(path.name)
    assert set(importers) == {"stripe_api.py"}


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
