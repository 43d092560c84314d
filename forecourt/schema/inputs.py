"""Input types that build themselves in one step from the coerced GraphQL value.

Strawberry converts an input object field by field, resolving each field's type again for every
object: ~45% of the server's time for a 10,000-row `importVehicles`. graphql-core has already
coerced and validated the value (scalars parsed, enums as members, required fields present), so
for leaf fields only the names need mapping. `from_input` is Strawberry's hook for input types
that build their own value; fields that are not leaves still go through Strawberry's conversion,
except lists of prebuilt inputs made only of leaves (an import's rows), built in one loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryOptional,
    has_object_definition,
)

T = TypeVar("T")
_LEAF, _LEAF_LIST, _CONVERT, _PREBUILT_LIST = 0, 1, 2, 3
_BUILDERS = "__prebuilt_builder__"  # a prebuilt class's (plan, make) factory


def _unwrap(type_: Any) -> Any:
    while isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return type_


def _kind(type_: Any) -> int:
    type_ = _unwrap(type_)
    if isinstance(type_, StrawberryList):
        item = _unwrap(type_.of_type)
        if hasattr(item, _BUILDERS):
            return _PREBUILT_LIST
        return _CONVERT if has_object_definition(item) or isinstance(item, StrawberryList) else _LEAF_LIST
    return _CONVERT if has_object_definition(type_) else _LEAF


def prebuilt(cls: type[T]) -> type[T]:
    """Give a `@strawberry.input` class the one-step builder (decorate above `@strawberry.input`)."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    plan: list[tuple[str, str, int, Any]] = []
    absent_as_none: dict[str, None] = {}
    leaves_only = [True]

    def make_plan(context: InputContext) -> None:
        for field in definition.fields:
            type_ = field.resolve_type(type_definition=definition)
            kind = _kind(type_)
            plan.append((context.config.name_converter.from_field(field), field.python_name, kind, type_))
            leaves_only[0] = leaves_only[0] and kind in (_LEAF, _LEAF_LIST)
            if field.default_value is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                absent_as_none[field.python_name] = None  # as Strawberry does: nullable, no default

    def build(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        if not plan:
            make_plan(context)
        kwargs: dict[str, Any] = dict(absent_as_none)
        for graphql_name, python_name, kind, type_ in plan:
            if graphql_name in value:
                item = value[graphql_name]
                if kind == _LEAF or item is None:
                    kwargs[python_name] = item
                elif kind == _LEAF_LIST:
                    kwargs[python_name] = list(item)  # graphql-core may share default lists
                elif kind == _PREBUILT_LIST and (make := _leaf_maker(_unwrap(type_).of_type, context)):
                    kwargs[python_name] = [None if x is None else make(x) for x in item]
                else:
                    kwargs[python_name] = context.convert(item, type_, graphql_name)
        return target(**kwargs)

    def leaf_maker(context: InputContext) -> Callable[[Mapping[str, Any]], Any] | None:
        """A builder for values of this class when all its fields are leaves (no context
        needed per value), else None."""
        if not plan:
            make_plan(context)
        if not leaves_only[0]:
            return None
        fields = [(g, p, k == _LEAF_LIST) for g, p, k, _ in plan]

        def make(value: Mapping[str, Any]) -> Any:
            kwargs: dict[str, Any] = dict(absent_as_none)
            for graphql_name, python_name, is_list in fields:
                if graphql_name in value:
                    item = value[graphql_name]
                    kwargs[python_name] = list(item) if is_list and item is not None else item
            return cls(**kwargs)

        return make

    definition.from_input = build
    setattr(cls, _BUILDERS, leaf_maker)
    return cls


def _leaf_maker(item_type: Any, context: InputContext) -> Callable[[Mapping[str, Any]], Any] | None:
    return getattr(_unwrap(item_type), _BUILDERS)(context)
