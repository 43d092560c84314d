"""Request limits: tokens (at parse), depth and aliases (at validation), and a cost budget.

Strawberry has no cost analysis, so this extension computes one: every object field costs 1
(scalars are free), mutations 10, and a list field's children are multiplied by its `first`
/ `limit` argument (or that argument's default), as Saleor does. The cost of each request is
reported in `extensions.cost`. Parsing and validation are cached per document text.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
    is_list_type,
    is_non_null_type,
    parse,
    specified_rules,
    validate,
    value_from_ast,
)
from graphql.type import GraphQLInterfaceType, GraphQLObjectType
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import (
    create_validator as depth_validator,
)

from forecourt.config import Settings
from forecourt.schema.errors import LIMIT_EXCEEDED

MULTIPLIER_ARGUMENTS = ("first", "last", "limit")
MUTATION_COST = 10
# Lists without a size argument (e.g. [String!] features or a small fixed list) are assumed to
# hold this many items when they hold objects.
UNBOUNDED_LIST_SIZE = 10


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    default_page_size: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_query_depth,
            settings.max_aliases,
            settings.max_tokens,
            settings.max_query_cost,
            settings.default_page_size,
        )


def _tagged(errors: list[GraphQLError]) -> list[GraphQLError]:
    for error in errors:
        error.extensions = {**(error.extensions or {}), "code": LIMIT_EXCEEDED}
    return errors


@lru_cache(maxsize=1024)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


_VALIDATION_CACHE: OrderedDict[tuple, tuple[GraphQLError, ...]] = OrderedDict()
VALIDATION_CACHE_SIZE = 1024


def _validate(
    schema: GraphQLSchema, query: str, document: DocumentNode, limits: Limits
) -> tuple[GraphQLError, ...]:
    """The specification's rules, then the limits; cached by document text."""
    key = (id(schema), query, limits)
    cached = _VALIDATION_CACHE.get(key)
    if cached is not None:
        _VALIDATION_CACHE.move_to_end(key)
        return cached
    errors = validate(schema, document, specified_rules)
    if not errors:
        rules = [depth_validator(limits.max_depth, None), alias_validator(limits.max_aliases)]
        errors = _tagged(validate(schema, document, rules))
    _VALIDATION_CACHE[key] = result = tuple(errors)
    if len(_VALIDATION_CACHE) > VALIDATION_CACHE_SIZE:
        _VALIDATION_CACHE.popitem(last=False)
    return result


class RequestLimits(SchemaExtension):
    def __init__(self, *, limits: Limits) -> None:
        self.limits = limits
        self.cost: int | None = None

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query and ctx.graphql_document is None:
            try:
                ctx.graphql_document = _parse(ctx.query, self.limits.max_tokens)
            except GraphQLError:
                pass  # strawberry parses again and reports the error as a request error
        yield

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None and ctx.pre_execution_errors is None:
            schema = ctx.schema._schema
            errors = list(_validate(schema, ctx.query or "", document, self.limits))
            if not errors:
                self.cost = _cached_cost(
                    schema, ctx.query or "", document, ctx.operation_name, ctx.variables or {},
                    self.limits.default_page_size,
                )
                if self.cost > self.limits.max_cost:
                    errors = _tagged(
                        [
                            GraphQLError(
                                f"query cost {self.cost} exceeds the maximum of "
                                f"{self.limits.max_cost}; ask for fewer items or fields"
                            )
                        ]
                    )
            ctx.pre_execution_errors = errors
        yield

    def get_results(self) -> dict[str, Any]:
        if self.cost is None:
            return {}
        return {"cost": {"requestedQueryCost": self.cost, "maximumAvailable": self.limits.max_cost}}


class _ReadVariables(dict):
    """Variables that note which of them were read."""

    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__(variables)
        self.read: set[str] = set()

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return super().__getitem__(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return super().__contains__(name)


_COST_CACHE: OrderedDict[tuple, tuple[tuple[str, ...], dict[tuple, int]]] = OrderedDict()
COST_CACHE_SIZE = 1024
COSTS_PER_DOCUMENT = 64


def _cached_cost(schema: GraphQLSchema, query: str, document: DocumentNode,
                 operation_name: str | None, variables: dict[str, Any], default_page_size: int) -> int:
    """operation_cost(), cached by document text and the values of the variables it reads
    (page sizes): a client repeating an operation pays for its cost analysis once."""
    key = (id(schema), query, operation_name, default_page_size)
    entry = _COST_CACHE.get(key)
    if entry is not None:
        names, costs = entry
        values = tuple(variables.get(name) for name in names)
        try:
            cost = costs.get(values)
        except TypeError:  # an unhashable value (a list or an object): not cached
            return operation_cost(schema, document, operation_name, variables, default_page_size)
        if cost is not None:
            _COST_CACHE.move_to_end(key)
            return cost
    read = _ReadVariables(variables)
    cost = operation_cost(schema, document, operation_name, read, default_page_size)
    names = tuple(sorted(read.read))
    if entry is None or entry[0] != names:
        entry = _COST_CACHE[key] = (names, {})
        if len(_COST_CACHE) > COST_CACHE_SIZE:
            _COST_CACHE.popitem(last=False)
    values = tuple(variables.get(name) for name in names)
    try:
        if len(entry[1]) < COSTS_PER_DOCUMENT:
            entry[1][values] = cost
    except TypeError:
        pass
    return cost


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any],
    default_page_size: int,
) -> int:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next(
        (o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)),
        None,
    )
    if operation is None:
        return 0
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    own = MUTATION_COST if operation.operation is OperationType.MUTATION else None
    return _selection_cost(root, operation.selection_set, fragments, variables, default_page_size, own)


def _selection_cost(
    parent: Any,
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    default_page_size: int,
    root_field_cost: int | None = None,
    seen: frozenset[str] = frozenset(),
) -> int:
    if selection_set is None or not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            name = selection.name.value
            if name.startswith("__"):
                continue
            field = parent.fields.get(name)
            if field is None:
                continue
            named = get_named_type(field.type)
            if not is_composite_type(named):
                continue
            own = root_field_cost if root_field_cost is not None else 1
            children = _selection_cost(
                named, selection.selection_set, fragments, variables, default_page_size, None, seen
            )
            total += own + _multiplier(parent, field, selection, variables, default_page_size) * children
        elif isinstance(selection, InlineFragmentNode):
            target = parent
            if selection.type_condition is not None:
                target = parent_schema_type(parent, selection.type_condition.name.value) or parent
            total += _selection_cost(
                target, selection.selection_set, fragments, variables, default_page_size,
                root_field_cost, seen,
            )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is None or name in seen:
                continue
            total += _selection_cost(
                parent, fragment.selection_set, fragments, variables, default_page_size,
                root_field_cost, seen | {name},
            )
    return total


def parent_schema_type(parent: Any, name: str) -> Any:
    # Fragments on the parent's own type are the common case; others are costed on the parent.
    return parent if parent.name == name else None


def _multiplier(
    parent: Any, field: Any, node: FieldNode, variables: dict[str, Any], default: int
) -> int:
    if parent.name.endswith("Connection"):
        return 1  # a connection's edges were already multiplied by the connection's `first`
    for arg_name in MULTIPLIER_ARGUMENTS:
        arg = field.args.get(arg_name)
        if arg is None:
            continue
        value = None
        for given in node.arguments or ():
            if given.name.value == arg_name:
                if isinstance(given.value, VariableNode):
                    value = variables.get(given.value.name.value)
                else:
                    value = value_from_ast(given.value, arg.type, variables)
        if value is None:
            value = arg.default_value if isinstance(arg.default_value, int) else default
        return max(1, int(value)) if isinstance(value, int) else default
    field_type = field.type.of_type if is_non_null_type(field.type) else field.type
    return UNBOUNDED_LIST_SIZE if is_list_type(field_type) else 1
