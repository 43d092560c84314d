"""An executor with a short path for the fields that make up most of a large response.

graphql-core resolves every field through the same general machinery (ResolveInfo, Path,
argument coercion, completion), ~4 µs a field; a 500-vehicle page has thousands of plain
attribute reads. Fields that need nothing more (no resolver, arguments or extensions) are read
and serialised directly here; everything else takes graphql-core's own path unchanged.
"""

from __future__ import annotations

import gc
import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLString,
    Undefined,
    is_leaf_type,
    is_object_type,
)
from graphql.pyutils import Path
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.cast import get_strawberry_type_cast

from forecourt.subscriptions.live import capture_executor
from forecourt.subscriptions.multiplex import SharedEvent, execute_shared

DEFINITION = "strawberry-definition"  # where strawberry keeps a GraphQLField's StrawberryField
_MISSING: Any = object()
_SLOW, _LEAF, _OBJECT = 0, 1, 2
# Values that are never awaitable: no is_awaitable() check for them.
_PLAIN = frozenset({str, int, float, bool, Decimal, datetime, uuid.UUID, list, dict})
# Scalars whose output is the value itself when it has exactly this Python type.
_SERIALISED_AS_ITSELF = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool, GraphQLInt: int}
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # GraphQL's Int




_heap_frozen = False
GC_YOUNGEST_THRESHOLD = 10_000


def freeze_startup_heap() -> None:
    """Garbage-collector settings for a server process, applied once per process.

    What exists once the app is built (modules, the schema, SQLAlchemy's metadata: some 10^5
    long-lived objects) is moved out of the cyclic collector's way: large responses allocate
    enough to trigger full collections, and each would otherwise walk all of it again (~20%
    of the CPU of a 500-vehicle page). And the youngest generation is collected every 10,000
    allocations rather than 700: a response's objects die young, by reference counting, and
    fewer collections find them gone (~4% at 50 vehicles, ~7% at 500)."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNGEST_THRESHOLD, 20, 20)


class _Field:
    """How the executor's short path treats one field of a selection (see Executor)."""

    __slots__ = (
        "exact", "fields", "from_prefetched", "kind", "name", "object_class", "python_name",
        "read", "return_type", "subfields", "table", "type_",
    )

    def __init__(self, name: str, fields: Any) -> None:
        self.name = name
        self.fields = fields
        self.kind = _SLOW
        self.python_name: str = ""
        self.from_prefetched = False
        self.read: Any = None
        self.type_: Any = None
        self.return_type: Any = None
        self.exact: type | None = None  # a Python type the scalar serialises as itself
        self.table: dict | None = None  # an enum's members -> their GraphQL names
        self.object_class: type | None = None  # a class is_type_of accepted
        self.subfields: Any = None  # the sub-selection's grouped field set


class Executor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor with a short path for the fields that make up most of a large
    response; everything else (arguments, resolvers, field extensions such as permissions,
    errors, `@defer`/`@stream`, middleware) takes graphql-core's own path.

    - A field without a resolver or extensions whose type is a scalar or enum is read as an
      attribute and serialised: no ResolveInfo, Path, Info, argument parsing or completion
      machinery per field.
    - Such a field of an object type is read the same way and its sub-selection executed;
      so is each object of a list of objects.
    - A resolver field without arguments or extensions takes the value its object holds in
      `prefetched` (a mapping by Python field name) when it holds one: relations loaded for a
      whole page at once are not resolved again, one by one, per object.

    A null for a non-null field, a value its scalar cannot serialise and an object of the
    wrong type all fall back to the ordinary path, which reports them as graphql-core does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        middleware = self.middleware_manager
        self._short_path = middleware is None or not middleware.middlewares
        self._plans: dict[int, tuple[Any, list[_Field], bool]] = {}

    def build_per_event_executor(self, payload: Any) -> Any:
        """A subscription event: shared ones (forecourt/subscriptions/multiplex.py) run once per
        selection and audience in this process; the others as graphql-core runs them."""
        capture_executor(self)  # for the fast path of a subscription that has one
        if type(payload) is SharedEvent:
            return _SharedEventRun(self, payload)
        return self.per_event_executor(payload)

    def per_event_executor(self, payload: Any) -> Any:
        executor = super().build_per_event_executor(payload)
        # graphql-core's copy would share the subscription's memos, which fill with every event's
        # field lists (memoised by identity, new for each event) for as long as it runs.
        executor._relevant_sub_fields = {}
        executor._plans = {}
        return executor

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        if position_context is not None or not self._short_path:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        cached = self._plans.get(id(grouped_field_set))
        if cached is None or cached[0] is not grouped_field_set:
            cached = self._plan(parent_type, grouped_field_set)
        _, plan, reads_prefetched = cached
        prefetched = getattr(source_value, "prefetched", None) if reads_prefetched else None
        is_awaitable = self.is_awaitable
        results: dict[str, Any] = {}
        awaitable_fields: list[str] = []
        try:
            for field in plan:
                kind = field.kind
                if kind is not _SLOW:
                    if field.from_prefetched:
                        value = prefetched.get(field.python_name, _MISSING) if prefetched else _MISSING
                    else:
                        value = field.read(source_value, field.python_name)
                    if value is None:
                        if field.return_type is field.type_:  # nullable
                            results[field.name] = None
                            continue
                    elif value is not _MISSING:
                        if kind is _LEAF:
                            exact = field.exact
                            if type(value) is exact and (exact is not int or _INT_MIN <= value <= _INT_MAX):
                                results[field.name] = value
                                continue
                            if field.table is not None and value in field.table:
                                results[field.name] = field.table[value]
                                continue
                            if type(value) in _PLAIN or isinstance(value, Enum) or not is_awaitable(value):
                                try:
                                    coerced = field.type_.coerce_output_value(value)
                                except Exception:  # noqa: BLE001 (the ordinary path reports it)
                                    coerced = None
                                if coerced is not None and coerced is not Undefined:
                                    results[field.name] = coerced
                                    continue
                        else:
                            completed = self._complete_object(field, parent_type, path, value)
                            if completed is not _MISSING:
                                results[field.name] = completed
                                if completed is not None and type(completed) is not dict:
                                    awaitable_fields.append(field.name)
                                continue
                name = field.name
                result = self.execute_field(
                    parent_type, source_value, field.fields, Path(path, name, parent_type.name), None
                )
                if result is not Undefined:
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[name] for name in awaitable_fields])
            raise

        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                name = awaitable_fields[0]
                results[name] = await results[name]
            else:
                awaited = await gather_with_cancel(*(results[n] for n in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()

    def _complete_object(
        self, field: _Field, parent_type: GraphQLObjectType, path: Path | None, value: Any
    ) -> Any:
        """Execute an object field's sub-selection: its result dict, an awaitable of it, None
        (an error, recorded), or _MISSING when the ordinary path must decide."""
        object_type = field.type_
        cast = get_strawberry_type_cast(value)
        if type(value) is not field.object_class or cast is not None:
            is_type_of = object_type.is_type_of
            if is_type_of is None:
                if self.is_awaitable(value):
                    return _MISSING
            else:
                try:
                    accepted = is_type_of(value, None)  # strawberry's is a class check
                except Exception:  # noqa: BLE001 (one that needs more: the ordinary path)
                    return _MISSING
                if accepted is not True:
                    return _MISSING
            if cast is None:
                field.object_class = type(value)  # accepted: the next of its class will be
        if field.subfields is None:
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(object_type, field.fields)
            if new_defer_usages:
                return _MISSING
            field.subfields = grouped_field_set
        field_path = Path(path, field.name, parent_type.name)
        try:
            completed = self.execute_fields(object_type, value, field_path, field.subfields, None)
        except Exception as error:  # noqa: BLE001 (handle_field_error raises if non-null)
            self.handle_field_error(error, field.return_type, field.fields, field_path)
            return None
        if type(completed) is dict:
            return completed
        return self._settle(completed, field.return_type, field.fields, field_path)

    def complete_list_item_value(
        self,
        item: Any,
        complete_results: list[Any],
        item_type: Any,
        field_details_list: Any,
        info: Any,
        item_path: Path,
        position_context: Any,
    ) -> bool:
        # An object in a list of objects: straight to its sub-selection.
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if (
            position_context is None
            and self._short_path
            and item is not None
            and isinstance(object_type, GraphQLObjectType)
            and (object_type.is_type_of is None or object_type.is_type_of(item, info) is True)
        ):
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(
                object_type, field_details_list
            )
            if not new_defer_usages:
                try:
                    completed = self.execute_fields(
                        object_type, item, item_path, grouped_field_set, None
                    )
                except Exception as error:  # noqa: BLE001 (as graphql-core does)
                    self.handle_field_error(error, item_type, field_details_list, item_path)
                    complete_results.append(None)
                    return False
                if type(completed) is dict:
                    complete_results.append(completed)
                    return False
                complete_results.append(
                    self._settle(completed, item_type, field_details_list, item_path)
                )
                return True
        return super().complete_list_item_value(
            item, complete_results, item_type, field_details_list, info, item_path,
            position_context,
        )

    async def _settle(self, completed: Any, return_type: Any, fields: Any, path: Path) -> Any:
        try:
            return await completed
        except Exception as error:  # noqa: BLE001 (handle_field_error raises if non-null)
            self.handle_field_error(error, return_type, fields, path)
            return None

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> tuple:
        # graphql-core memoises a sub-selection's grouped field set per request, so all the
        # objects of a list share one plan.
        plan = [_field_plan(parent_type, name, fields) for name, fields in grouped_field_set.items()]
        cached = (grouped_field_set, plan, any(field.from_prefetched for field in plan))
        self._plans[id(grouped_field_set)] = cached
        return cached


class _SharedEventRun:
    """What graphql-core runs for a shared subscription event (see Executor)."""

    __slots__ = ("event", "executor")

    def __init__(self, executor: Executor, event: SharedEvent) -> None:
        self.executor = executor
        self.event = event

    def execute_operation(self, serially: bool | None = None) -> Any:
        return execute_shared(self.executor, self.event)


def _field_plan(parent_type: GraphQLObjectType, name: str, fields: Any) -> _Field:
    field = _Field(name, fields)
    node = fields[0].node
    field_def = parent_type.fields.get(node.name.value)
    if field_def is None or node.arguments:
        return field
    how = field_def.__dict__.get(_HOW)
    if how is None:
        how = field_def.__dict__[_HOW] = _how(field_def)  # lives as long as the schema
    if how[0] is not _SLOW:
        (field.kind, field.python_name, field.from_prefetched, field.read, field.type_,
         field.return_type, field.exact, field.table) = how
    return field


_HOW = "_forecourt_short_path"  # where a GraphQLField keeps how the short path treats it


def _how(field_def: Any) -> tuple:
    """How the short path treats a field of the schema, whatever the operation: (kind, Python
    name, read from `prefetched`?, attribute reader, named type, declared type, exact type,
    enum table)."""
    slow = (_SLOW,)
    definition = (field_def.extensions or {}).get(DEFINITION)
    if field_def.args or definition is None or definition.extensions:
        return slow
    if definition.base_resolver is None:
        if not getattr(field_def.resolve, "_is_default", False):
            return slow
        from_prefetched, read = False, definition.default_resolver
    else:
        from_prefetched, read = True, None
    return_type = field_def.type
    type_ = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    exact = table = None
    if is_leaf_type(type_):
        kind = _LEAF
        exact = _SERIALISED_AS_ITSELF.get(type_)
        wrapped = getattr(type_, "wrapped_cls", None)  # a strawberry enum's Python enum
        if isinstance(type_, GraphQLEnumType) and isinstance(wrapped, type) and issubclass(wrapped, Enum):
            table = {
                member: name
                for name, value in type_.values.items()
                for member in wrapped
                if member.value == value.value
            }
    elif is_object_type(type_):
        kind = _OBJECT
    else:
        return slow
    return kind, definition.python_name, from_prefetched, read, type_, return_type, exact, table
