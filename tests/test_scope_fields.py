"""The scope's fields are declared once, in the engine's ``SCOPE_FIELDS``: the command line, the
OpenAPI body, the plan's words and the README's table all name the same fields, and a field
added to the table reaches each of them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from checkout_sweeper.cli import main
from checkout_sweeper.cli.display import scope_text
from checkout_sweeper.cli.reference import commands, scope_table
from checkout_sweeper.cli.scopes import scope_option
from checkout_sweeper.engine.scope import FIELDS, SCOPE_FIELDS, Form, Scope, ScopeField
from checkout_sweeper.web.openapi.components import scope_body
from checkout_sweeper.web.openapi.document import openapi_spec
from checkout_sweeper.web.openapi.schedules import CADENCE

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
SCHEMAS = openapi_spec("/v1")["components"]["schemas"]
SCOPED_COMMANDS = ("sweep", "schedules add")
COLOUR = ScopeField(
    "colour",
    Form.STRIPE_ID,
    metavar="col_...",
    schema={"type": "string", "pattern": "^col_[a-z]{1,20}$"},
    meaning="Only sessions of this colour.",
    parse=str,
    shown="in colour {}",
    applied="checked on each listed session",
)


def _readme_rows() -> list[str]:
    """The names in the README's scope table, in its order."""
    return re.findall(r"^\| `([a-z_]+)` \(`--", README, flags=re.MULTILINE)


def test_the_scope_holds_the_tables_fields_in_its_order():
    assert tuple(field.name for field in dataclasses.fields(Scope)) == FIELDS
    assert tuple(Scope().as_dict()) == FIELDS


def test_every_command_with_a_scope_has_each_field_as_its_option():
    scoped = {path: command for path, command in commands(main) if path in SCOPED_COMMANDS}
    assert set(scoped) == set(SCOPED_COMMANDS)
    for path, command in scoped.items():
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        assert set(FIELDS) <= set(options), path
        for field in SCOPE_FIELDS:
            option = options[field.name]
            assert option.opts == [field.option], path
            assert (option.metavar, option.help) == (field.metavar, field.help), path


def test_the_api_bodies_take_exactly_the_tables_fields():
    sweep_body = set(SCHEMAS["SweepRequest"]["properties"]) - {"dry_run", "accounts"}
    schedule_body = set(SCHEMAS["ScheduleRequest"]["properties"]) - {"dry_run", *CADENCE}
    assert sweep_body == schedule_body == set(FIELDS)
    for field in SCOPE_FIELDS:
        shown = SCHEMAS["SweepRequest"]["properties"][field.name]
        assert shown["type"] == [field.schema["type"], "null"]
        assert shown["description"] == field.meaning


def test_the_readme_table_lists_the_tables_fields_in_order():
    assert _readme_rows() == list(FIELDS)
    assert scope_table() in README, "README.md is behind SCOPE_FIELDS: run `cog -r README.md`"


def test_the_plan_shows_every_field_that_is_set():
    scope = Scope(
        older_than="2h",
        customer="cus_A",
        payment_link="plink_B",
        metadata=(("k", "v"),),
        limit=3,
    )
    assert scope_text(scope) == (
        " older than 2h of customer cus_A from payment link plink_B with metadata k=v"
        " (at most 3, newest first)"
    )
    assert scope_text(Scope(created_before=1_700_000_000)) == " created before 2023-11-14T22:13:20Z"


def test_a_field_added_to_the_table_reaches_the_option_the_body_and_the_readme():
    @click.command()
    @scope_option(COLOUR)
    def command(colour: str | None) -> None:
        """A command with one scope option."""

    (option,) = command.params
    assert option.opts == ["--colour"] and option.metavar == "col_..."
    assert option.help == COLOUR.meaning
    schema, description = scope_body([COLOUR])["colour"]
    assert schema == {"type": ["string", "null"], "pattern": "^col_[a-z]{1,20}$"}
    assert description == COLOUR.meaning
    assert "| `colour` (`--colour col_...`) | Only sessions of this colour. |" in scope_table(
        [COLOUR]
    )
