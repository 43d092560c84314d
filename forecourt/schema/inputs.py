"""Input types that build themselves in one step from the coerced GraphQL value.

Strawberry converts an input object field by field, resolving each field's type again for every
object: ~45% of the server's time for a 10,000-row `importVehicles`. graphql-core has already
coerced and validated the value (scalars parsed, enums as members, required fields present), so
for leaf fields only the names need mapping. `from_input` is Strawberry's hook for input types
that build their own value; fields that are not leaves still go through Strawberry's conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryOptional,
    has_object_definition,
)

T = TypeVar("T")
_LEAF, _LEAF_LIST, _CONVERT = 0, 1, 2


def _kind(type_: Any) -> int:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    if isinstance(type_, StrawberryList):
        item = type_.of_type
        while isinstance(item, StrawberryOptional):
            item = item.of_type
        return _CONVERT if has_object_definition(item) or isinstance(item, StrawberryList) else _LEAF_LIST
    return _CONVERT if has_object_definition(type_) else _LEAF


def prebuilt(cls: type[T]) -> type[T]:
    """Give a `@strawberry.input` class the one-step builder (decorate above `@strawberry.input`)."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    plan: list[tuple[str, str, int, Any]] = []
    absent_as_none: dict[str, None] = {}

    def build(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        if not plan:
            for field in definition.fields:
                type_ = field.resolve_type(type_definition=definition)
                plan.append((context.config.name_converter.from_field(field), field.python_name,
                             _kind(type_), type_))
                if field.default_value is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    absent_as_none[field.python_name] = None  # as Strawberry does: nullable, no default
        kwargs: dict[str, Any] = dict(absent_as_none)
        for graphql_name, python_name, kind, type_ in plan:
            if graphql_name in value:
                item = value[graphql_name]
                if kind == _LEAF or item is None:
                    kwargs[python_name] = item
                elif kind == _LEAF_LIST:
                    kwargs[python_name] = list(item)  # graphql-core may share default lists
                else:
                    kwargs[python_name] = context.convert(item, type_, graphql_name)
        return target(**kwargs)

    definition.from_input = build
    return cls
