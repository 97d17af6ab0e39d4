"""The README's command-line reference, written from the click commands themselves, and its
table of scope fields, written from the engine's ``SCOPE_FIELDS``.

``cog -r README.md`` pastes ``reference()`` and ``scope_table()`` between the README's markers
and CI runs ``cog --check``, so an option or a scope field added cannot be missing from the
README.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from checkout_sweeper.cli.options import global_options
from checkout_sweeper.engine.scope import SCOPE_FIELDS, Form, ScopeField

WIDTH = 96
COMMENT_COLUMN = 62
GLOBAL_NAMES = {option.name for option in global_options()}


def reference(group: click.Group) -> str:
    """The global options, then one line per command (wrapped, continuation lines indented)."""
    summary = "options every command takes, before or after its name"
    lines = _entry("checkout-sweeper", group, summary, tail=["COMMAND ..."])
    for path, command in commands(group):
        lines += _entry(f"checkout-sweeper {path}", command)
    return "\n".join(lines)


def scope_table(fields: Sequence[ScopeField] = SCOPE_FIELDS) -> str:
    """One row per scope field: its name and option, what it means, how a sweep applies it."""
    lines = ["| scope | means | how it is applied |", "|---|---|---|"]
    for field in fields:
        repeated = ", repeatable" if field.form is Form.PAIRS else ""
        cells = (
            f"`{field.name}` (`{field.option} {field.metavar}`{repeated})",
            field.meaning,
            field.applied,
        )
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    """Every command by its path (``users add``), a group that runs by itself included."""
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            if command.invoke_without_command:  # a group that is a command by itself too
                found.append((path, command))
            found += commands(command, path + " ")
        else:
            found.append((path, command))
    return found


def _entry(
    head: str, command: click.Command, summary: str | None = None, tail: list[str] | None = None
) -> list[str]:
    """The usage wrapped between whole options, and the summary as a comment beside it (or
    above it, when it does not fit); the global options only on the group's own line."""
    lines = [head]
    own = [p for p in command.params if _shown(p) and (summary or p.name not in GLOBAL_NAMES)]
    for word in [*map(_usage, own), *(tail or [])]:
        if len(lines[-1]) + 1 + len(word) > WIDTH:
            lines.append("   ")
        lines[-1] += f" {word}"
    comment = f"# {summary or _summary(command)}"
    if len(lines) == 1 and max(len(head), len(lines[0])) < COMMENT_COLUMN:
        fits = len(lines[0].ljust(COMMENT_COLUMN)) + len(comment) <= WIDTH + 4
        if fits:
            return [lines[0].ljust(COMMENT_COLUMN) + comment]
    return [comment, *lines]


def _summary(command: click.Command) -> str:
    """The first sentence of the command's help."""
    first = " ".join((command.help or "").strip().split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".")


def _shown(param: click.Parameter) -> bool:
    return not (isinstance(param, click.Option) and param.name in ("help", "version"))


def _usage(param: click.Parameter) -> str:
    """``[--dry-run]``, ``[--yes|-y]``, ``--email EMAIL``, ``[--outcome OUTCOME ...]``, ``ID``."""
    if isinstance(param, click.Argument):
        return (param.metavar or (param.name or "").upper()).strip()
    assert isinstance(param, click.Option)
    names = "|".join(sorted(param.opts, key=lambda o: not o.startswith("--")))
    text = names
    if not param.is_flag:
        text += f" {param.metavar or _metavar(param)}"
        if param.multiple:
            text += " ..."
    return text if param.required else f"[{text}]"


def _metavar(param: click.Option) -> str:
    """What a value looks like: the choices, N for a whole number, R for a rate or fraction."""
    if isinstance(param.type, click.Choice):
        return "|".join(map(str, param.type.choices))
    if isinstance(param.type, click.types.IntParamType):
        return "N"
    if isinstance(param.type, click.types.FloatParamType):
        return "R"
    return (param.name or "").upper()
