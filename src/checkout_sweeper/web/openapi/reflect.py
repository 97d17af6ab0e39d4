"""JSON Schemas derived from the dataclasses and TypedDicts the endpoint returns, so the OpenAPI
document cannot drift from the answers: a field added to ``SweepResult`` (or to a fleet's
``FleetAnswer``) appears in ``/openapi.json``."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, NotRequired

from checkout_sweeper.vocabulary import JsonObject

_SCALARS: dict[Any, JsonObject] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    float: {"type": "number"},
    Any: {},
    object: {},
}


def type_schema(hint: Any) -> JsonObject:
    """The JSON Schema of one Python type hint (scalars, lists, dicts, optionals)."""
    if hint in _SCALARS:
        return dict(_SCALARS[hint])
    if typing.is_typeddict(hint):
        return typed_dict_schema(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(args[1])}
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return {"anyOf": [type_schema(inner[0]), {"type": "null"}]}
    raise TypeError(f"no JSON Schema for {hint!r}")


def dataclass_schema(cls: type, *, optional: frozenset[str] = frozenset()) -> JsonObject:
    """An object schema with every field of ``cls``, described by its ``description`` metadata;
    fields not in ``optional`` are required."""
    hints = typing.get_type_hints(cls)
    properties: JsonObject = {}
    for item in dataclasses.fields(cls):
        schema = type_schema(hints[item.name])
        if "description" in item.metadata:
            schema["description"] = item.metadata["description"]
        properties[item.name] = schema
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def typed_dict_schema(cls: type) -> JsonObject:
    """An object schema with every key of the TypedDict ``cls``, those not marked
    ``NotRequired`` required (read from the hints: with postponed annotations the class's own
    ``__required_keys__`` holds every key)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    optional = {name for name, hint in hints.items() if typing.get_origin(hint) is NotRequired}
    bare = {
        name: typing.get_args(hint)[0] if name in optional else hint for name, hint in hints.items()
    }
    return {
        "type": "object",
        "required": [name for name in hints if name not in optional],
        "properties": {name: type_schema(hint) for name, hint in bare.items()},
        "additionalProperties": False,
    }
