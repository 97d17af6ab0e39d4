"""The README's command-line section says what the code offers, option for option."""

from __future__ import annotations

import re
from pathlib import Path

import click

from checkout_sweeper.cli import main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _cli_section() -> str:
    section = README.split("### Command line", 1)[1]
    return section.split("```", 2)[1]


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, path + " "))
            if command.invoke_without_command:  # a group that is a command by itself too
                found[path] = command
        else:
            found[path] = command
    return found


def _entries() -> list[str]:
    """One string per README command line, its indented continuation lines joined to it."""
    entries: list[str] = []
    for line in _cli_section().splitlines():
        if line.startswith(" ") and entries:
            entries[-1] += " " + line.strip()
        elif line.strip():
            entries.append(line)
    return entries


def test_every_command_and_option_is_in_the_readme():
    entries = _entries()
    for path, command in _commands(main).items():
        mine = [e for e in entries if re.match(rf"checkout-sweeper {path}( |$)", e)]
        assert mine, f"`checkout-sweeper {path}` is missing from the README's command line"
        text = " ".join(mine)
        options = [o for p in command.params for o in p.opts if o.startswith("--")]
        missing = [o for o in options if not re.search(rf"{o}\b", text)]
        assert not missing, f"README's `{path}` line lacks {missing}"


def test_every_command_in_the_readme_exists():
    commands = _commands(main)
    for line in _entries():
        words = line.split("#")[0].split()
        if not words:
            continue
        assert words[0] == "checkout-sweeper"
        path = " ".join(w for w in words[1:3] if re.fullmatch(r"[a-z-]+", w))
        if not path:  # the line of global options
            global_options = {o for p in main.params for o in p.opts}
            assert set(re.findall(r"--[a-z-]+", line)) <= global_options, line
            continue
        assert any(path == known or path.startswith(known + " ") for known in commands), line
