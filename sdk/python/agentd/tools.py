"""Client tools: the @tool decorator, JSON Schema from type hints, and calling a tool with the
model's arguments.

A tool is a plain Python function. Its name is the function's name, its description the first
paragraph of its docstring, and its parameters' JSON Schema comes from the type hints (parameter
descriptions from a Google-style ``Args:`` section). agentd's schema subset (docs/context.md)
is respected: only type, properties, required, additionalProperties, items, enum, anyOf,
description and default are produced.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import json
import re
import types
import typing
from typing import Any, Callable, Dict, Optional

from agentd.v1 import agent_pb2

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolDefinitionError(TypeError):
    """A function cannot be turned into a tool (bad name, unsupported type hint)."""


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's parameters."""


class AsyncToolError(RuntimeError):
    """An ``async def`` tool was called from inside a running event loop: a mistake in the
    program, raised to it (not sent to the model as the tool's error)."""


class Tool:
    """A Python function exposed to the model as a CLIENT tool.

    Calling a Tool calls the function, so a decorated function keeps working as before.
    """

    def __init__(self, fn: Callable, name: Optional[str] = None,
                 description: Optional[str] = None):
        if not callable(fn):
            raise ToolDefinitionError(f"@tool needs a function, got {fn!r}")
        self.fn = fn
        self.name = name or fn.__name__
        if not _NAME_RE.match(self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r} must be 1-64 letters, digits, _ or -")
        summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
        self.description = description if description is not None else summary
        self._signature = inspect.signature(fn)
        self._hints = _type_hints(fn)
        self.parameters = _parameters_schema(self._signature, self._hints, arg_docs, self.name)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<agentd.Tool {self.name}>"

    def to_proto(self) -> agent_pb2.ToolSpec:
        """The ToolSpec (kind CLIENT) to register on an agent."""
        return agent_pb2.ToolSpec(
            name=self.name,
            description=self.description,
            parameters_json_schema=json.dumps(self.parameters, sort_keys=True),
            kind=agent_pb2.TOOL_KIND_CLIENT,
        )

    def convert_arguments(self, arguments_json: str) -> Dict[str, Any]:
        """Parses the model's JSON arguments into keyword arguments for the function.

        Converts lightly where the intent is clear (an integral float to int, "3" to int, an
        int to float, "true"/"false" to bool, a value to its Enum member). Raises
        ToolArgumentError for anything else that does not fit.
        """
        try:
            raw = json.loads(arguments_json) if arguments_json.strip() else {}
        except json.JSONDecodeError as e:
            raise ToolArgumentError(f"arguments are not valid JSON: {e}") from None
        if not isinstance(raw, dict):
            raise ToolArgumentError("arguments must be a JSON object")
        params = self._signature.parameters
        takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
        kwargs: Dict[str, Any] = {}
        for key, value in raw.items():
            param = params.get(key)
            if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                if not takes_kwargs:
                    raise ToolArgumentError(f"unexpected argument {key!r}")
                kwargs[key] = value
                continue
            hint = self._hints.get(key, Any)
            try:
                kwargs[key] = _convert(value, hint)
            except (TypeError, ValueError) as e:
                raise ToolArgumentError(f"argument {key!r}: {e}") from None
        for pname, param in params.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.default is param.empty and pname not in kwargs:
                raise ToolArgumentError(f"missing required argument {pname!r}")
        return kwargs

    def invoke(self, arguments_json: str) -> str:
        """Calls the function with the model's arguments; returns its output as text (a str
        as is, anything else as JSON). An ``async def`` tool is run to completion with
        asyncio.run (the SDK is synchronous: not from inside a running event loop).
        Exceptions propagate to the caller."""
        result = self.fn(**self.convert_arguments(arguments_json))
        if inspect.isawaitable(result):
            result = _await(result, self.name)
        if isinstance(result, str):
            return result
        return json.dumps(result, default=_json_default)


def _await(awaitable: Any, name: str) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # none running in this thread: run the coroutine here
        async def run():
            return await awaitable
        return asyncio.run(run())
    if inspect.iscoroutine(awaitable):
        awaitable.close()  # never awaited: don't leave a warning behind
    raise AsyncToolError(
        f"async tool {name!r} called inside a running event loop: the agentd SDK is "
        "synchronous; call run()/stream() from another thread (e.g. asyncio.to_thread)")


def tool(fn: Optional[Callable] = None, *, name: Optional[str] = None,
         description: Optional[str] = None):
    """Turns a function into a client tool: ``@tool`` or ``@tool(name=..., description=...)``."""
    if fn is None:
        return lambda f: Tool(f, name=name, description=description)
    return Tool(fn, name=name, description=description)


def builtin_tool(name: str, requires_approval: bool = False) -> agent_pb2.ToolSpec:
    """A ToolSpec for a tool agentd runs itself (kind BUILTIN, e.g. "memory_search",
    "memory_put", "state_get", "state_put"); pass it in create_agent(tools=[...])."""
    return agent_pb2.ToolSpec(name=name, kind=agent_pb2.TOOL_KIND_BUILTIN,
                              requires_approval=requires_approval)


def as_tool(obj: Any) -> Tool:
    """A Tool for a Tool or a plain function (decorated on the fly)."""
    return obj if isinstance(obj, Tool) else Tool(obj)


# ---- docstrings ------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|"
                         r"Notes?|See Also|Attributes)\s*:\s*$")
_ARG_RE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str):
    """Returns (description, {parameter: description}) from a Google-style docstring: the
    description is the first paragraph (lines joined), parameter texts come from ``Args:``."""
    lines = doc.expandtabs().splitlines()
    paragraph = []
    for line in lines:
        if not line.strip() or _SECTION_RE.match(line.strip()):
            break
        paragraph.append(line.strip())
    description = " ".join(paragraph)
    args: Dict[str, str] = {}
    in_args = False
    base_indent = None
    current = None
    for line in lines:
        stripped = line.strip()
        if _SECTION_RE.match(stripped) and len(line) - len(line.lstrip()) == 0:
            in_args = stripped.split(":")[0] in ("Args", "Arguments", "Parameters")
            base_indent = None
            current = None
            continue
        if not in_args or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if base_indent is None:
            base_indent = indent
        m = _ARG_RE.match(stripped)
        if indent <= base_indent and m:
            current = m.group(1).lstrip("*")
            args[current] = m.group(3).strip()
        elif current is not None and indent > base_indent:
            args[current] = (args[current] + " " + stripped).strip()
    return description, args


# ---- JSON Schema from type hints -------------------------------------------------------------

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_hints(fn: Callable) -> Dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception as e:  # e.g. a forward reference that does not resolve
        raise ToolDefinitionError(f"cannot read the type hints of {fn.__name__}: {e}") from None


def _is_union(origin) -> bool:
    return origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType)


def type_schema(hint: Any) -> Dict[str, Any]:
    """The JSON Schema for one type hint. Raises ToolDefinitionError for unsupported hints."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint is type(None):
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        return _enum_schema(values)
    if hint in (list, tuple, set, frozenset):
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if _is_union(origin):
        non_null = [a for a in args if a is not type(None)]
        has_null = len(non_null) != len(args)
        if len(non_null) == 1:
            inner = type_schema(non_null[0])
            if has_null and set(inner) == {"type"} and isinstance(inner["type"], str):
                return {"type": [inner["type"], "null"]}
            if not has_null:
                return inner
            return {"anyOf": [inner, {"type": "null"}]}
        options = [type_schema(a) for a in non_null]
        if has_null:
            options.append({"type": "null"})
        return {"anyOf": options}
    if origin is typing.Literal:
        return _enum_schema(list(args))
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            if args:
                raise ToolDefinitionError(
                    f"fixed-length tuple hints are not supported ({hint!r}); use list[T]")
        item = args[0] if args else Any
        schema: Dict[str, Any] = {"type": "array"}
        item_schema = type_schema(item)
        if item_schema:
            schema["items"] = item_schema
        return schema
    if origin is dict:
        schema = {"type": "object"}
        if len(args) == 2:
            if args[0] is not str:
                raise ToolDefinitionError(f"dict keys must be str in tool parameters ({hint!r})")
            value_schema = type_schema(args[1])
            if value_schema:
                schema["additionalProperties"] = value_schema
        return schema
    raise ToolDefinitionError(f"unsupported type hint for a tool parameter: {hint!r}")


def _enum_schema(values: list) -> Dict[str, Any]:
    schema: Dict[str, Any] = {"enum": values}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _json_type(value: Any) -> Optional[str]:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _parameters_schema(sig: inspect.Signature, hints: Dict[str, Any], arg_docs: Dict[str, str],
                       tool_name: str) -> Dict[str, Any]:
    properties: Dict[str, Any] = {}
    required = []
    extra_allowed = False
    for pname, param in sig.parameters.items():
        if param.kind == param.VAR_KEYWORD:
            extra_allowed = True
            continue
        if param.kind == param.VAR_POSITIONAL:
            continue
        if param.kind == param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {tool_name}: positional-only parameter {pname!r} cannot take a named argument")
        try:
            prop = dict(type_schema(hints.get(pname, Any)))
        except ToolDefinitionError as e:
            raise ToolDefinitionError(f"tool {tool_name}, parameter {pname!r}: {e}") from None
        if pname in arg_docs and arg_docs[pname]:
            prop["description"] = arg_docs[pname]
        if param.default is param.empty:
            required.append(pname)
        else:
            default = _jsonable(param.default)
            if default is not _NOT_JSON:
                prop["default"] = default
        properties[pname] = prop
    schema: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if not extra_allowed:
        schema["additionalProperties"] = False
    return schema


_NOT_JSON = object()


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return _NOT_JSON
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "__dict__"):
        return vars(value)
    return str(value)


# ---- argument conversion ---------------------------------------------------------------------

def _convert(value: Any, hint: Any) -> Any:
    """Converts a JSON value to `hint` where the intent is clear; raises ValueError otherwise."""
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    if hint is type(None):
        if value is not None:
            raise ValueError("must be null")
        return None
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"expected a boolean, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        raise ValueError(f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {value!r}")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(
                f"expected one of {[m.value for m in hint]}, got {value!r}") from None
    if hint in (list, tuple, set, frozenset, dict):
        return _convert_container(value, hint, ())
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if _is_union(origin):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors) or f"unexpected value {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"expected one of {list(args)}, got {value!r}")
    if origin in (list, tuple, set, frozenset, dict):
        return _convert_container(value, origin, args)
    return value


def _convert_container(value: Any, origin: Any, args: tuple) -> Any:
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {value!r}")
        if len(args) == 2:
            return {k: _convert(v, args[1]) for k, v in value.items()}
        return value
    if not isinstance(value, list):
        raise ValueError(f"expected an array, got {value!r}")
    item = args[0] if args else Any
    items = [_convert(v, item) for v in value]
    return items if origin is list else origin(items)
