"""The README's command-line reference is generated from the commands, option for option."""

from __future__ import annotations

import re
from pathlib import Path

from checkout_sweeper.cli import main
from checkout_sweeper.cli.options import global_options
from checkout_sweeper.cli.reference import GLOBAL_NAMES, commands, reference

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _entries(text: str) -> list[str]:
    """One string per command line, its indented continuation lines joined to it."""
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and entries:
            entries[-1] += " " + line.strip()
        elif line.startswith("checkout-sweeper"):
            entries.append(line)
    return entries


def test_the_readme_command_line_is_the_generated_one():
    assert reference(main) in README, "README.md is behind the commands: run `cog -r README.md`"


def test_the_reference_names_every_command_and_option():
    entries = _entries(reference(main))
    global_line = " ".join(e for e in entries if e.endswith("COMMAND ..."))
    for option in global_options():
        assert option.opts[0] in global_line, f"{option.opts[0]} is not among the global options"
    for path, command in commands(main):
        mine = [e for e in entries if re.match(rf"checkout-sweeper {path}( |$)", e)]
        assert mine, f"`checkout-sweeper {path}` is missing from the reference"
        text = " ".join(mine)
        own = [p for p in command.params if p.name not in GLOBAL_NAMES]
        options = [o for p in own for o in p.opts if o.startswith("--")]
        missing = [o for o in options if not re.search(rf"{o}\b", text)]
        assert not missing, f"the reference's `{path}` line lacks {missing}"


def test_every_command_in_the_reference_exists():
    known_paths = [path for path, _ in commands(main)]
    for line in _entries(reference(main)):
        words = line.split("#")[0].split()
        path = " ".join(w for w in words[1:3] if re.fullmatch(r"[a-z-]+", w))
        if not path:  # the line of global options
            global_options = {o for p in main.params for o in p.opts}
            assert set(re.findall(r"--[a-z-]+", line)) <= global_options, line
            continue
        assert any(path == known or path.startswith(known + " ") for known in known_paths), line


def _json_example(after: str) -> str:
    """The first ```json block after the line that starts with ``after``."""
    rest = README[README.index(after) :]
    start = rest.index("```json") + len("```json")
    return rest[start : rest.index("```", start)]


def test_the_json_examples_show_every_field_of_the_answers():
    from checkout_sweeper.engine.tally import SweepResult
    from checkout_sweeper.runs.fleet.result import AccountOutcome, FleetResult

    one = _json_example("## The API")
    swept = SweepResult(sweep_id="x", dry_run=False)
    for name in swept.as_data():
        assert f'"{name}":' in one, f"the endpoint's example lacks {name}"
    fleet = _json_example("## Fleet sweeps")
    answer = FleetResult("p", False, [AccountOutcome("acct_1", "x", "succeeded", swept)]).as_data()
    for name in [*answer, *answer["accounts"][0]]:
        assert f'"{name}":' in fleet, f"the fleet example lacks {name}"


def test_the_metrics_table_names_every_trigger():
    from checkout_sweeper.vocabulary import Trigger, values

    [row] = [line for line in README.splitlines() if "_sweeps_started_total`" in line]
    assert all(f"`{trigger}`" in row for trigger in values(Trigger)), row
