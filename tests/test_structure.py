"""The shape the code keeps where import contracts cannot say it: packages for the layers, small
units, one error tree."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import NamedTuple

import pytest

import checkout_sweeper
from checkout_sweeper import errors
from checkout_sweeper.cli.architecture import architecture, entries

PACKAGE = Path(checkout_sweeper.__file__).resolve().parent
README = Path(__file__).resolve().parent.parent / "README.md"
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


def _stem(name: str) -> str:
    """A module name's first word without a plural or an -er: ``sweeps`` and ``sweeper`` are
    ``sweep``, ``schedules`` and ``scheduler`` are ``schedul``."""
    word = name.split("_")[0].lower()
    for suffix in ("ers", "er", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.removesuffix("e")


def _twins(names: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a in names for b in names if a < b and _stem(a) == _stem(b)]


def test_the_twin_rule_catches_what_it_should():
    assert _twins(["sweep", "sweeps", "scheduler", "schedules", "fleet", "fleet_rows"]) == [
        ("sweep", "sweeps"),
        ("scheduler", "schedules"),
        ("fleet", "fleet_rows"),
    ]
    assert _twins(["users", "tokens", "state", "server", "scope", "stop"]) == []


def test_no_package_holds_two_modules_of_one_name():
    """One name per concept: no ``sweep`` beside ``sweeps``, no ``fleet_*`` family."""
    twins = []
    for package in [PACKAGE, *(p.parent for p in PACKAGE.rglob("__init__.py"))]:
        names = [p.stem for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
        names += [p.parent.name for p in package.glob("*/__init__.py")]
        twins += [f"{package.relative_to(PACKAGE.parent)}: {a}, {b}" for a, b in _twins(names)]
    assert twins == []


def _architecture_section() -> str:
    text = README.read_text()
    start = text.index("\n## Architecture\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_names_every_module():
    """Walked here, not through the generator: a module the generator skipped fails too."""
    section = _architecture_section()
    unnamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("store/migrations/versions/"):
            continue  # Alembic's revisions: one line for all of them, `store/migrations/`
        if path.name == "__init__.py" and "/" in relative:
            relative = relative.removesuffix("__init__.py")  # a package: `runs/`
        if not re.search(rf"(?<![\w/.-]){re.escape(relative)}(?![\w/.-])", section):
            unnamed.append(relative)
    assert not unnamed, f"README.md does not name {unnamed}: run `make docs`"


def test_the_readme_module_list_is_the_generated_one() -> None:
    assert architecture() in _architecture_section(), "run `make docs`"


def test_a_module_without_a_docstring_stops_the_module_list(tmp_path: Path) -> None:
    (tmp_path / "documented.py").write_text('"""Says what it is for."""\n')
    (tmp_path / "bare.py").write_text("VALUE = 1\n")
    with pytest.raises(ValueError, match=r"bare\.py"):
        entries(tmp_path)


class _Drawn(NamedTuple):
    depth: int
    name: str
    http: str
    exit: str


_TREE_LINE = re.compile(
    r"(?P<prefix>    (?:[│ ]   )*(?:[├└]── )?)(?P<name>[A-Z]\w*)"
    r"(?:  +\S.*?)??  +(?P<http>\d+(?:/\d+)*|any) +(?P<exit>\d+(?:/\d+)*|any)"
)


def _drawn_tree() -> list[_Drawn]:
    """The lines of the docstring's drawing under the ``HTTP  exit`` header, as drawn."""
    lines = (errors.__doc__ or "").split("::\n", 1)[1].strip("\n").splitlines()
    assert lines[0].split() == ["HTTP", "exit"], lines[0]
    drawn = []
    for line in lines[1:]:
        match = _TREE_LINE.fullmatch(line)
        assert match, f"not a line of the tree (name, meaning, HTTP status, exit code): {line!r}"
        depth = (len(match["prefix"]) - 4) // 4
        drawn.append(_Drawn(depth, match["name"], match["http"], match["exit"]))
    return drawn


def _exception_classes() -> dict[str, type[BaseException]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }


def _set_per_instance(cls: type, attribute: str) -> bool:
    """Whether the class, or a class of the module it inherits from, assigns
    ``self.<attribute>`` (``AuthError``'s 401 or 400, ``CommandFailure``'s exit code)."""
    source = ast.parse(Path(errors.__file__).read_text())
    own = {node.name: node for node in source.body if isinstance(node, ast.ClassDef)}
    return any(
        isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr == attribute
        for ancestor in cls.__mro__
        if ancestor.__name__ in own
        for node in ast.walk(own[ancestor.__name__])
    )


def test_the_drawn_error_tree_names_every_class_and_only_those():
    drawn = [line.name for line in _drawn_tree()]
    assert len(drawn) == len(set(drawn)), f"drawn twice: {sorted(drawn)}"
    defined = _exception_classes()
    assert sorted(set(defined) - set(drawn)) == [], "classes missing from errors.py's tree"
    assert sorted(set(drawn) - set(defined)) == [], "drawn in errors.py's tree, not defined"


def test_the_drawn_error_tree_nests_as_the_classes_do():
    classes = _exception_classes()
    parents: list[str] = []  # the drawn ancestors of the current line, root first
    for line in _drawn_tree():
        assert line.depth <= len(parents), f"{line.name} is indented past its parent"
        del parents[line.depth :]
        own_bases = [b.__name__ for b in classes[line.name].__bases__ if b.__name__ in classes]
        assert own_bases == parents[-1:], f"{line.name} is drawn under {parents[-1:]}"
        parents.append(line.name)


def test_the_drawn_error_tree_gives_each_class_its_status_and_exit_code():
    """A number is the class's attribute; ``any`` or ``401/400`` is one set per instance."""
    classes = _exception_classes()
    for line in _drawn_tree():
        cls = classes[line.name]
        for attribute, drawn in (("http_status", line.http), ("exit_code", line.exit)):
            where = f"{line.name}.{attribute} drawn as {drawn}"
            if drawn.isdigit():
                assert int(drawn) == getattr(cls, attribute), where
                assert not _set_per_instance(cls, attribute), f"{where}, but set per instance"
            else:
                assert _set_per_instance(cls, attribute), f"{where}, but not set per instance"
            for value in drawn.split("/") if drawn != "any" else []:
                valid = range(400, 600) if attribute == "http_status" else set(errors.ExitCode)
                assert int(value) in valid, where
