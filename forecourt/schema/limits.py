"""Request limits: the query's length (before parsing), tokens (at parse), depth and aliases
(at validation), and a cost budget.

Strawberry has no cost analysis, so this extension computes one: every object field costs 1
(scalars are free), mutations 10, and a list field's children are multiplied by its `first`
/ `limit` argument (or that argument's default, and never more than MAX_PAGE_SIZE), as Saleor
does. Fragments and abstract types are costed on every object type they can apply to. The
cost of each request is reported in `extensions.cost`. Parsing and validation are cached per
document text.
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
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NameNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_composite_type,
    is_list_type,
    is_non_null_type,
    parse,
    specified_rules,
    validate,
    value_from_ast,
)
from strawberry.extensions import SchemaExtension

from forecourt.config import Settings
from forecourt.schema.errors import LIMIT_EXCEEDED, QUERY_TOO_LARGE

MULTIPLIER_ARGUMENTS = ("first", "last", "limit")
MUTATION_COST = 10
# Lists without a size argument (e.g. [String!] features or a small fixed list) are assumed to
# hold this many items when they hold objects.
UNBOUNDED_LIST_SIZE = 10
# Costs stop growing here: the largest integer every JSON reader (JavaScript's included)
# carries exactly, far above any budget.
COST_CEILING = 2**53 - 1


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_cost: int
    default_page_size: int
    max_page_size: int
    max_query_length: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_query_depth,
            settings.max_aliases,
            settings.max_tokens,
            settings.max_query_cost,
            settings.default_page_size,
            settings.max_page_size,
            settings.max_query_length,
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
        errors = _tagged(_shape_errors(document, limits))
    _VALIDATION_CACHE[key] = result = tuple(errors)
    if len(_VALIDATION_CACHE) > VALIDATION_CACHE_SIZE:
        _VALIDATION_CACHE.popitem(last=False)
    return result


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }


def _shape_errors(document: DocumentNode, limits: Limits) -> list[GraphQLError]:
    """Depth per operation and aliases over the document, as strawberry's QueryDepthLimiter
    and MaxAliasesLimiter count them (introspection fields add no depth; a fragment's aliases
    count at each spread), but measuring each fragment once: theirs expand every spread
    again, exponential in fragments that spread the next one twice (900 bytes held the
    event loop for 16 s)."""
    shape = _Shape(_fragments(document))
    errors = []
    aliases = 0
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        depth, operation_aliases = shape.measure(operation.selection_set)
        aliases += operation_aliases
        if depth > limits.max_depth:
            name = operation.name.value if operation.name else "anonymous"
            errors.append(GraphQLError(
                f"'{name}' exceeds maximum operation depth of {limits.max_depth}", operation
            ))
    if aliases > limits.max_aliases:
        errors.append(GraphQLError(f"{aliases} aliases found. Allowed: {limits.max_aliases}"))
    return errors


class _Shape:
    """The depth and alias count of selection sets, each fragment measured once."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self._fragments_measured: dict[str, tuple[int, int]] = {}
        self._measuring: set[str] = set()

    def measure(self, selection_set: SelectionSetNode) -> tuple[int, int]:
        """(depth in fields that have selections, aliases)"""
        depth = aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                aliases += selection.alias is not None
                if selection.selection_set is None:
                    continue
                child_depth, child_aliases = self.measure(selection.selection_set)
                aliases += child_aliases
                if not selection.name.value.startswith("__"):
                    depth = max(depth, 1 + child_depth)
            elif isinstance(selection, InlineFragmentNode):
                child_depth, child_aliases = self.measure(selection.selection_set)
                depth, aliases = max(depth, child_depth), aliases + child_aliases
            else:
                child_depth, child_aliases = self._fragment(selection.name.value)
                depth, aliases = max(depth, child_depth), aliases + child_aliases
        return depth, aliases

    def _fragment(self, name: str) -> tuple[int, int]:
        measured = self._fragments_measured.get(name)
        if measured is not None:
            return measured
        fragment = self.fragments.get(name)
        if fragment is None or name in self._measuring:
            return 0, 0  # unknown or cyclic: validation has refused these already
        self._measuring.add(name)
        measured = self._fragments_measured[name] = self.measure(fragment.selection_set)
        self._measuring.discard(name)
        return measured


class RequestLimits(SchemaExtension):
    def __init__(self, *, limits: Limits) -> None:
        self.limits = limits
        self.cost: int | None = None

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.limits.max_tokens
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        if ctx.query and len(ctx.query) > self.limits.max_query_length:
            self._refuse_too_long()
        elif ctx.query and ctx.graphql_document is None:
            try:
                ctx.graphql_document = _parse(ctx.query, self.limits.max_tokens)
            except GraphQLError:
                pass  # strawberry parses again and reports the error as a request error
        yield

    def _refuse_too_long(self) -> None:
        """Answer a request error without lexing the query (megabytes of whitespace or
        comments hold the event loop for seconds). Strawberry reports only its own parser's
        errors, so a stand-in document, never validated or run, carries the error on every
        transport; it names the requested operation, as strawberry looks that up."""
        ctx = self.execution_context
        message = (
            f"the query is longer than {self.limits.max_query_length} characters; "
            "send large values as variables"
        )
        name = NameNode(value=ctx.operation_name) if ctx.operation_name else None
        ctx.graphql_document = DocumentNode(
            definitions=(
                OperationDefinitionNode(
                    operation=OperationType.QUERY,
                    name=name,
                    selection_set=SelectionSetNode(selections=()),
                ),
            )
        )
        ctx.pre_execution_errors = [GraphQLError(message, extensions={"code": QUERY_TOO_LARGE})]

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        if document is not None and ctx.pre_execution_errors is None:
            schema = ctx.schema._schema
            errors = list(_validate(schema, ctx.query or "", document, self.limits))
            if not errors:
                self.cost = _cached_cost(
                    schema, ctx.query or "", document, ctx.operation_name, ctx.variables or {},
                    self.limits,
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
                 operation_name: str | None, variables: dict[str, Any], limits: Limits) -> int:
    """operation_cost(), cached by document text and the values of the variables it reads
    (page sizes): a client repeating an operation pays for its cost analysis once."""
    page_sizes = (limits.default_page_size, limits.max_page_size)
    key = (id(schema), query, operation_name, page_sizes)
    entry = _COST_CACHE.get(key)
    if entry is not None:
        names, costs = entry
        values = tuple(variables.get(name) for name in names)
        try:
            cost = costs.get(values)
        except TypeError:  # an unhashable value (a list or an object): not cached
            return operation_cost(schema, document, operation_name, variables, *page_sizes)
        if cost is not None:
            _COST_CACHE.move_to_end(key)
            return cost
    read = _ReadVariables(variables)
    cost = operation_cost(schema, document, operation_name, read, *page_sizes)
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
    max_page_size: int,
) -> int:
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
    own = MUTATION_COST if operation.operation is OperationType.MUTATION else 1
    walk = _CostWalk(schema, _fragments(document), variables, default_page_size, max_page_size)
    return walk.selection_set(root, operation.selection_set, own)


def _saturated(cost: int) -> int:
    return min(cost, COST_CEILING)


class _CostWalk:
    """The cost of one operation's selections.

    A selection set is costed on each object type the value can have: fields and fragments
    are resolved against that type, so a fragment under an interface or union (inline or
    named, nested or not) is charged exactly when it can apply. An interface's or union's
    cost is the largest over its object types, since each value is one of them (the sum would
    charge `node { ... on A {…} ... on B {…} }` for objects it can never return). Costs are
    memoized per (selection set, object type): fragments spread many times, or interfaces
    with many types, are costed once each, so the walk is linear in the document.
    """

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        default_page_size: int,
        max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._costs: dict[tuple[int, str, int], int] = {}
        self._walking: set[tuple[int, str, int]] = set()

    def selection_set(
        self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None, field_cost: int = 1
    ) -> int:
        """The cost of `selection_set` on a value of type `parent`, each object field in it
        costing `field_cost` (more for a mutation's root fields)."""
        if selection_set is None or not is_composite_type(parent):
            return 0
        if is_abstract_type(parent):
            objects = self.schema.get_possible_types(parent)
        else:
            objects = (parent,)
        return max(
            (self._on_object(obj, selection_set, field_cost) for obj in objects), default=0
        )

    def _on_object(
        self, obj: GraphQLObjectType, selection_set: SelectionSetNode, field_cost: int
    ) -> int:
        key = (id(selection_set), obj.name, field_cost)
        cost = self._costs.get(key)
        if cost is not None:
            return cost
        if key in self._walking:
            return 0  # a fragment cycle; validation refuses these before costing
        self._walking.add(key)
        cost = 0
        for selection in selection_set.selections:
            cost = _saturated(cost + self._selection(obj, selection, field_cost))
            if cost == COST_CEILING:
                break
        self._walking.discard(key)
        self._costs[key] = cost
        return cost

    def _selection(
        self,
        obj: GraphQLObjectType,
        selection: FieldNode | InlineFragmentNode | FragmentSpreadNode,
        field_cost: int,
    ) -> int:
        if isinstance(selection, FieldNode):
            return self._field(obj, selection, field_cost)
        if isinstance(selection, InlineFragmentNode):
            condition, selection_set = selection.type_condition, selection.selection_set
        else:
            fragment = self.fragments.get(selection.name.value)
            if fragment is None:
                return 0
            condition, selection_set = fragment.type_condition, fragment.selection_set
        if condition is not None and not self._applies(condition.name.value, obj):
            return 0
        return self._on_object(obj, selection_set, field_cost)

    def _applies(self, type_condition: str, obj: GraphQLObjectType) -> bool:
        """Whether a fragment on `type_condition` applies to a value of type `obj`."""
        condition = self.schema.get_type(type_condition)
        if condition is obj:
            return True
        return is_abstract_type(condition) and self.schema.is_sub_type(condition, obj)

    def _field(self, obj: GraphQLObjectType, node: FieldNode, field_cost: int) -> int:
        if node.name.value.startswith("__"):
            return 0
        field = obj.fields.get(node.name.value)
        if field is None:
            return 0
        named = get_named_type(field.type)
        if not is_composite_type(named):
            return 0
        children = self.selection_set(named, node.selection_set)
        return _saturated(field_cost + self._multiplier(obj, field, node) * children)

    def _multiplier(self, parent: GraphQLObjectType, field: GraphQLField, node: FieldNode) -> int:
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
                        value = self.variables.get(given.value.name.value)
                    else:
                        value = value_from_ast(given.value, arg.type, self.variables)
            if value is None:
                value = arg.default_value if isinstance(arg.default_value, int) else self.default_page_size
            if not isinstance(value, int):
                return self.default_page_size
            # No resolver returns more than a page: connections refuse a larger `first` and
            # lists clamp theirs, so a larger number costs no more (nor overflows).
            return min(max(1, value), self.max_page_size)
        field_type = field.type.of_type if is_non_null_type(field.type) else field.type
        return UNBOUNDED_LIST_SIZE if is_list_type(field_type) else 1
