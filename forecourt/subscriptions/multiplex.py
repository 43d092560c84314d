"""Multiplexed subscriptions: a live event is executed and serialised once per process for each
distinct selection and audience, not once per subscriber (as Hasura multiplexes live queries).

A subscription resolver yields a `SharedEvent` for an event that all of this process's
subscribers see as the same object (a published event: `Published.share`). The executor
(`forecourt/schema/execution.py`) runs the subscriber's selection on it only if no subscriber
with the same key has yet; the WebSocket handlers (`forecourt/schema/http.py`) send the result's
JSON, encoded once (`SharedData.text`), in a frame of each subscriber's own.

The key is (selection, audience):

- the selection: the root field as written, without its arguments (they choose the events,
  not how one is rendered: clients resuming from different `afterSequence` share), the
  fragments, and the values of the variables those use;
- the audience: what about the viewer can change the result. A selection made only of plain
  fields (no resolver, arguments or permission classes: read from the event's own objects) and
  of the resolver fields the subscription lists in `Visibility.fields` is keyed by
  `Visibility.of(event, context)` — e.g. for an auction event: guest, seller or staff, leader,
  the bid's bidder, the winner — so thousands of viewers form a handful of groups. Any other
  field may depend on the viewer in ways the subscription has not declared: such selections
  are keyed by the viewer itself (`context.principal`; guests form one group) and are never
  shared between two principals.

So a viewer-dependent resolver field may only be listed in `Visibility.fields` if the audience
function captures everything it reads about the viewer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import orjson
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    Node,
    SelectionSetNode,
    VariableNode,
    print_ast,
)

STRAWBERRY_DEFINITION = "strawberry-definition"


@dataclass(frozen=True)
class Visibility:
    """How an event's rendering depends on the viewer, for one subscription.

    `fields`: ("Type", "field") pairs of resolver fields whose answer depends on the viewer only
    through `of`. `of(root, context)`: a hashable audience class for one event and viewer."""

    fields: frozenset[tuple[str, str]]
    of: Callable[[Any, Any], Hashable]


EXACT_VIEWER = Visibility(frozenset(), lambda root, context: _viewer(context))


class SharedEvent:
    """The root value of one event, shared by every subscriber of this process, with the
    results of the selections executed on it so far (by key)."""

    __slots__ = ("results", "root", "visibility")

    def __init__(self, root: Any, visibility: Visibility = EXACT_VIEWER) -> None:
        self.root = root
        self.visibility = visibility
        self.results: dict[Hashable, Any] = {}


class SharedData(dict):
    """An execution result's `data`, shared by subscribers: encoded to JSON once."""

    __slots__ = ("_text",)

    @property
    def text(self) -> str:
        try:
            return self._text
        except AttributeError:
            self._text = orjson.dumps(self).decode()
            return self._text


def frame(kind: str, operation_id: str, data: SharedData, extensions: dict | None = None) -> str:
    """A `next` (graphql-transport-ws) or `data` (graphql-ws) message: shared data, the
    subscriber's own extensions (e.g. the operation's cost)."""
    tail = f',"extensions":{orjson.dumps(extensions).decode()}' if extensions else ""
    return (f'{{"type":"{kind}","id":{orjson.dumps(operation_id).decode()},'
            f'"payload":{{"data":{data.text}{tail}}}}}')


@dataclass
class Selection:
    """What a subscription's selection contributes to the key, worked out once per subscription."""

    key: Hashable
    # The root field's type and selection, when the operation is one plain root field.
    root_type: Any = None
    selection_set: SelectionSetNode | None = None
    fragments: dict = field(default_factory=dict)
    # Per Visibility: None if the selection has undeclared fields, else whether it uses
    # declared (viewer-dependent) ones.
    closed: dict[Visibility, bool | None] = field(default_factory=dict)

    def audience(self, event: SharedEvent, context: Any) -> Hashable:
        visibility = event.visibility
        try:
            depends = self.closed[visibility]
        except KeyError:
            depends = self.closed[visibility] = self._depends(visibility)
        if depends is None:
            return ("viewer", _viewer(context))
        if depends:
            return ("class", visibility.of(event.root, context))
        return ("anyone",)

    def _depends(self, visibility: Visibility) -> bool | None:
        if visibility is EXACT_VIEWER or self.selection_set is None:
            return None
        used: set[tuple[str, str]] = set()
        if not _closed(self.root_type, self.selection_set, self.fragments, visibility.fields, used):
            return None
        return bool(used)


# Executions actually run for shared events, per process: tests read it to see multiplexing.
executions = 0


def execute_shared(executor: Any, event: SharedEvent) -> Any:
    """The result of `executor`'s selection on `event`: from the event's results when a
    subscriber with the same key has it already (or is computing it), else executed here.
    `executor` is the subscription's graphql-core executor; returns an ExecutionResult or an
    awaitable of one."""
    selection = selection_of(executor)
    key = (selection.key, selection.audience(event, executor.context_value))
    results = event.results
    known = results.get(key)
    if known is None:
        future = asyncio.get_running_loop().create_future()
        results[key] = future
        return _execute(executor, event, key, future)
    if isinstance(known, asyncio.Future):
        return _wait(executor, event, known)
    return known


def _run(executor: Any, event: SharedEvent) -> Any:
    global executions
    executions += 1
    return executor.per_event_executor(event.root).execute_operation(False)


def _share(result: Any) -> Any:
    if result.data is not None and type(result.data) is not SharedData:
        result.data = SharedData(result.data)
    return result


async def _execute(executor: Any, event: SharedEvent, key: Hashable, future: asyncio.Future) -> Any:
    try:
        result = _run(executor, event)
        if executor.is_awaitable(result):
            result = await result
    except BaseException:
        # Cancelled or failed: whoever waits runs the selection themself.
        del event.results[key]
        future.set_result(None)
        raise
    result = _share(result)
    event.results[key] = result
    future.set_result(result)
    return result


async def _wait(executor: Any, event: SharedEvent, future: asyncio.Future) -> Any:
    result = await future
    if result is not None:
        return result
    result = _run(executor, event)
    if executor.is_awaitable(result):
        result = await result
    return result


def selection_of(executor: Any) -> Selection:
    selection = getattr(executor, "_forecourt_selection", None)
    if selection is None:
        selection = executor._forecourt_selection = _analyse(executor)
    return selection


def _analyse(executor: Any) -> Selection:
    operation = executor.operation
    fragments = executor.fragment_definitions
    roots = operation.selection_set.selections
    root = roots[0] if len(roots) == 1 else None
    root_type = selection_set = None
    if isinstance(root, FieldNode) and not root.directives:
        # The root field's arguments choose the events; how an event renders is the rest.
        rendered: list[Node] = [FieldNode(alias=root.alias, name=root.name, arguments=(),
                                          directives=(), selection_set=root.selection_set)]
        subscription = executor.schema.subscription_type
        root_field = subscription.fields.get(root.name.value) if subscription else None
        if root_field is not None and root.selection_set is not None:
            root_type, selection_set = _named(root_field.type), root.selection_set
    else:
        rendered = [operation]
    rendered += [fragments[name] for name in sorted(fragments)]
    used = sorted({name for node in rendered for name in _variables(node)})
    values = executor.variable_values
    coerced = values.coerced if hasattr(values, "coerced") else values
    text = "\n".join(print_ast(node) for node in rendered)
    variables = orjson.dumps({name: coerced.get(name) for name in used}, default=repr,
                             option=orjson.OPT_SORT_KEYS)
    return Selection((text, variables), root_type, selection_set, fragments)


def _closed(parent: Any, selection_set: SelectionSetNode, fragments: dict,
            declared: frozenset[tuple[str, str]], used: set[tuple[str, str]]) -> bool:
    """Whether every field selected is plain or declared (those go into `used`). Object types
    only: a selection on an interface or union is not analysed (treated as open)."""
    if not isinstance(parent, GraphQLObjectType):
        return False
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            name = node.name.value
            if name == "__typename":
                continue
            field_def = parent.fields.get(name)
            if field_def is None:
                return False
            if not _plain(field_def):
                if (parent.name, name) not in declared:
                    return False
                used.add((parent.name, name))
            if node.selection_set is not None and not _closed(
                    _named(field_def.type), node.selection_set, fragments, declared, used):
                return False
        elif isinstance(node, InlineFragmentNode):
            if node.type_condition is not None and node.type_condition.name.value != parent.name:
                return False
            if not _closed(parent, node.selection_set, fragments, declared, used):
                return False
        elif isinstance(node, FragmentSpreadNode):
            fragment = fragments.get(node.name.value)
            if fragment is None or fragment.type_condition.name.value != parent.name:
                return False
            if not _closed(parent, fragment.selection_set, fragments, declared, used):
                return False
        else:
            return False
    return True


def _plain(field_def: Any) -> bool:
    """A field read from its object as it is: no arguments, resolver or extensions
    (permission classes are extensions)."""
    definition = (field_def.extensions or {}).get(STRAWBERRY_DEFINITION)
    return (not field_def.args and definition is not None and definition.base_resolver is None
            and not definition.extensions and not definition.permission_classes)


def _named(type_: Any) -> Any:
    while isinstance(type_, (GraphQLNonNull, GraphQLList)):
        type_ = type_.of_type
    return type_


def _variables(node: Node) -> set[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, VariableNode):
            found.add(value.name.value)
        elif isinstance(value, Node):
            for key in value.keys:
                walk(getattr(value, key, None))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(node)
    return found


def _viewer(context: Any) -> Hashable:
    """Who is watching, exactly: the principal (None for guests); a context without one is
    its own viewer."""
    return getattr(context, "principal", context)
