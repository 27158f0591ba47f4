"""Unit tests of @tool: schema from type hints and docstrings, argument conversion."""

import enum
import json
from typing import Dict, List, Literal, Optional, Union

import pytest

import agentd
from agentd import tool
from agentd.v1 import agent_pb2


class Unit(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


@tool
def get_weather(city: str, days: int = 1, unit: Unit = Unit.CELSIUS,
                detailed: bool = False) -> str:
    """Weather for a city.

    Uses the forecast service.

    Args:
        city: The city, e.g. "Paris".
        days: How many days to forecast,
            counting today.

    Returns:
        A sentence.
    """
    return f"{city}:{days}:{unit.value}:{detailed}"


def test_name_description_and_proto():
    assert get_weather.name == "get_weather"
    assert get_weather.description == "Weather for a city."
    spec = get_weather.to_proto()
    assert spec.kind == agent_pb2.TOOL_KIND_CLIENT
    assert spec.name == "get_weather"
    assert json.loads(spec.parameters_json_schema) == get_weather.parameters
    # The decorated function still works as a function.
    assert get_weather("Oslo", days=2) == "Oslo:2:c:False"


def test_schema_from_hints_defaults_and_arg_docs():
    schema = get_weather.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["city"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["city"] == {"type": "string", "description": 'The city, e.g. "Paris".'}
    assert props["days"] == {"type": "integer", "default": 1,
                             "description": "How many days to forecast, counting today."}
    assert props["unit"] == {"type": "string", "enum": ["c", "f"], "default": "c"}
    assert props["detailed"] == {"type": "boolean", "default": False}


def test_container_optional_literal_and_union_types():
    @tool(name="search-docs", description="Finds documents.")
    def search(query: str, tags: List[str], limit: Optional[int] = None,
               order: Literal["asc", "desc"] = "asc", weights: Dict[str, float] = None,
               ids: list[int] = (), any_list: list = (), key: Union[int, str] = 0,
               extra: dict = None, maybe: Optional[List[str]] = None) -> dict:
        """Ignored because description= is given."""
        return {}

    assert search.name == "search-docs"
    assert search.description == "Finds documents."
    p = search.parameters["properties"]
    assert search.parameters["required"] == ["query", "tags"]
    assert p["tags"] == {"type": "array", "items": {"type": "string"}}
    assert p["limit"] == {"type": ["integer", "null"], "default": None}
    assert p["order"] == {"type": "string", "enum": ["asc", "desc"], "default": "asc"}
    assert p["weights"]["type"] == "object"
    assert p["weights"]["additionalProperties"] == {"type": "number"}
    assert p["ids"]["items"] == {"type": "integer"}
    assert p["any_list"]["type"] == "array" and "items" not in p["any_list"]
    assert p["key"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert p["extra"]["type"] == "object"
    assert p["maybe"]["anyOf"] == [{"type": "array", "items": {"type": "string"}},
                                   {"type": "null"}]


def test_kwargs_allow_extra_properties_and_no_params():
    @tool
    def free(**kw) -> str:
        """Takes anything."""
        return json.dumps(kw, sort_keys=True)

    @tool
    def now() -> str:
        return "noon"

    assert "additionalProperties" not in free.parameters
    assert free.invoke('{"a": 1}') == '{"a": 1}'
    assert now.parameters == {"type": "object", "properties": {}, "additionalProperties": False}
    assert now.description == ""
    assert now.invoke("") == "noon"


def test_bad_definitions_are_rejected():
    with pytest.raises(agentd.ToolDefinitionError, match="tool name"):
        tool(name="has space")(lambda: None)
    with pytest.raises(agentd.ToolDefinitionError, match="unsupported type hint"):
        @tool
        def f(x: complex) -> str:
            return ""
    with pytest.raises(agentd.ToolDefinitionError, match="dict keys"):
        @tool
        def g(x: Dict[int, str]) -> str:
            return ""


def test_argument_conversion():
    assert get_weather.convert_arguments('{"city": "Rome", "days": 2.0, "unit": "f"}') == {
        "city": "Rome", "days": 2, "unit": Unit.FAHRENHEIT}
    assert get_weather.convert_arguments('{"city": "Rome", "days": "3", "detailed": "true"}') == {
        "city": "Rome", "days": 3, "detailed": True}
    assert get_weather.invoke('{"city": "Rome", "unit": "f"}') == "Rome:1:f:False"

    @tool
    def area(w: float, sizes: list[float], mode: Optional[Literal["a", "b"]] = None) -> dict:
        return {"area": w * 2, "sizes": sizes, "mode": mode}

    assert json.loads(area.invoke('{"w": 2, "sizes": [1, 2.5], "mode": "b"}')) == {
        "area": 4.0, "sizes": [1.0, 2.5], "mode": "b"}
    assert area.convert_arguments('{"w": 1, "sizes": [], "mode": null}')["mode"] is None


@pytest.mark.parametrize("args, message", [
    ('{"days": 1}', "missing required argument 'city'"),
    ('{"city": "x", "country": "y"}', "unexpected argument 'country'"),
    ('{"city": "x", "days": "many"}', "argument 'days': expected an integer"),
    ('{"city": "x", "days": 1.5}', "expected an integer"),
    ('{"city": 5}', "expected a string"),
    ('{"city": "x", "unit": "kelvin"}', "expected one of"),
    ('{"city": "x", "detailed": 1}', "expected a boolean"),
    ('[1, 2]', "must be a JSON object"),
    ('{not json', "not valid JSON"),
])
def test_argument_errors(args, message):
    with pytest.raises(agentd.ToolArgumentError, match=message):
        get_weather.convert_arguments(args)


def test_non_string_results_are_json():
    @tool
    def stats() -> dict:
        return {"n": 1, "unit": Unit.CELSIUS, "set": {3}}

    assert json.loads(stats.invoke("{}")) == {"n": 1, "unit": "c", "set": [3]}


def test_async_tools_are_awaited():
    @tool
    async def slow_weather(city: str) -> str:
        """Weather, fetched asynchronously."""
        return f"sunny in {city}"

    assert slow_weather.invoke('{"city": "Oslo"}') == "sunny in Oslo"
    assert slow_weather.to_proto().description == "Weather, fetched asynchronously."


def test_async_tool_inside_a_running_loop_is_a_clear_error():
    import asyncio

    @tool
    async def slow_weather(city: str) -> str:
        return city

    async def main():
        with pytest.raises(agentd.AsyncToolError, match="running event loop"):
            slow_weather.invoke('{"city": "Oslo"}')

    asyncio.run(main())
