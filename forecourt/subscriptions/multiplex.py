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
    through the audience class. The class of a viewer for an event is `classes(root)(viewer)`,
    where `viewer(context)` is what matters about a subscriber (worked out once per
    subscription) and `classes(root)` is worked out once per event: with thousands of
    subscribers, each one's class costs one call and a few comparisons."""

    fields: frozenset[tuple[str, str]]
    viewer: Callable[[Any], Hashable]
    classes: Callable[[Any], Callable[[Hashable], Hashable]]

    def of(self, root: Any, context: Any) -> Hashable:
        """The audience class of one viewer for one event."""
        return self.classes(root)(self.viewer(context))


def _same(viewer: Hashable) -> Hashable:
    return viewer


EXACT_VIEWER = Visibility(frozenset(), lambda context: _viewer(context), lambda root: _same)


class SharedEvent:
    """The root value of one event, shared by every subscriber of this process, with the
    results of the selections executed on it so far (by key)."""

    __slots__ = ("_classes", "frames", "messages", "results", "root", "visibility")

    def __init__(self, root: Any, visibility: Visibility = EXACT_VIEWER) -> None:
        self.root = root
        self.visibility = visibility
        self.results: dict[Hashable, Any] = {}
        # The fast path's messages (SharedData.message) by selection, message and audience.
        self.messages: dict[Hashable, list] = {}
        # Their WebSocket frames by the lanes' group and audience (live.py).
        self.frames: dict[Hashable, bytes] = {}
        self._classes: Callable[[Hashable], Hashable] | None = None

    def audience_class(self, viewer: Hashable) -> Hashable:
        classes = self._classes
        if classes is None:
            classes = self._classes = self.visibility.classes(self.root)
        return classes(viewer)


class SharedData(dict):
    """An execution result's `data`, shared by subscribers: encoded to JSON once, and each
    distinct message carrying it (`message`) once."""

    __slots__ = ("_messages", "_text")

    @property
    def text(self) -> str:
        try:
            return self._text
        except AttributeError:
            self._text = orjson.dumps(self).decode()
            return self._text

    def message(self, kind: str, operation_id: str, extensions: str) -> list:
        """The `next`/`data` message for an operation id and its extensions (JSON text, ""
        for none), as `[UTF-8 bytes, None, None]`: fast-path sockets keep the WebSocket frames
        they make of it in the other slots, for the next subscriber that sends the same
        message (forecourt/subscriptions/sockets.py)."""
        try:
            messages = self._messages
        except AttributeError:
            messages = self._messages = {}
        key = (kind, operation_id, extensions)
        entry = messages.get(key)
        if entry is None:
            tail = f',"extensions":{extensions}' if extensions else ""
            text = (f'{{"type":"{kind}","id":{orjson.dumps(operation_id).decode()},'
                    f'"payload":{{"data":{self.text}{tail}}}}}')
            entry = messages[key] = [text.encode(), None, None]
        return entry


def extensions_text(extensions: dict | None) -> str:
    return orjson.dumps(extensions).decode() if extensions else ""


def frame(kind: str, operation_id: str, data: SharedData, extensions: dict | None = None) -> str:
    """A `next` (graphql-transport-ws) or `data` (graphql-ws) message: shared data, the
    subscriber's own extensions (e.g. the operation's cost)."""
    return data.message(kind, operation_id, extensions_text(extensions))[0].decode()


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
    # Per Visibility: the subscriber's `viewer` (a Selection belongs to one subscription,
    # so to one context).
    viewers: dict[Visibility, Hashable] = field(default_factory=dict)
    # False once an execution of this selection has turned out asynchronous (a resolver
    # that awaits): the fast path (live.py) does not deliver such a selection.
    synchronous: bool = True

    def audience(self, event: SharedEvent, context: Any) -> Hashable:
        visibility = event.visibility
        try:
            depends = self.closed[visibility]
        except KeyError:
            depends = self.closed[visibility] = self._depends(visibility)
        if depends is None:
            return ("viewer", _viewer(context))
        if depends:
            try:
                viewer = self.viewers[visibility]
            except KeyError:
                viewer = self.viewers[visibility] = visibility.viewer(context)
            return ("class", event.audience_class(viewer))
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


def render_now(executor: Any, event: SharedEvent) -> Any:
    """`execute_shared` for the fast path (live.py), which cannot wait: the result if it is
    known or can be had synchronously, else None (an execution that awaits is left running
    for the subscribers that wait for it, and the selection is marked asynchronous)."""
    selection = selection_of(executor)
    key = (selection.key, selection.audience(event, executor.context_value))
    results = event.results
    known = results.get(key)
    if known is None:
        try:
            result = _run(executor, event)
        except Exception:  # noqa: BLE001 (the ordinary path runs it again and reports it)
            return None
        if executor.is_awaitable(result):
            selection.synchronous = False
            future = results[key] = asyncio.get_running_loop().create_future()
            task = asyncio.get_running_loop().create_task(_finish(result, event, key, future))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
            return None
        result = results[key] = _share(result)
        return result
    if isinstance(known, asyncio.Future):
        return None
    return known


_pending: set[asyncio.Task] = set()


async def _finish(awaitable: Any, event: SharedEvent, key: Hashable, future: asyncio.Future) -> None:
    try:
        result = _share(await awaitable)
    except BaseException:  # noqa: BLE001 (whoever waits runs the selection and reports it)
        del event.results[key]
        future.set_result(None)
        return
    event.results[key] = result
    future.set_result(result)


async def _execute(executor: Any, event: SharedEvent, key: Hashable, future: asyncio.Future) -> Any:
    try:
        result = _run(executor, event)
        if executor.is_awaitable(result):
            selection_of(executor).synchronous = False
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
