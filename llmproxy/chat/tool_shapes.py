"""The tool fields of a chat request as OpenAI documents them: tools, tool_choice, the deprecated functions and
function_call, and response_format (its json_schema follows the same naming rule)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmproxy import json_schema as js
from llmproxy.chat.shape_checks import (
    NAME_PATTERN,
    check_bool,
    check_choice,
    check_name,
    check_object,
    check_str,
    invalid,
    member,
    optional_str,
    required,
)

MAX_TOOLS = 128  # OpenAI: "A max of 128 functions are supported."
_TOOL_CHOICE_MODES = ("none", "auto", "required")


_FUNCTION = js.obj(
    {
        "name": js.string(pattern=f"^{NAME_PATTERN.pattern}$"),
        "description": js.nullable(js.string()),
        "parameters": js.nullable(js.obj()),
        "strict": js.nullable(js.BOOLEAN),
    },
    required=["name"],
)


def each_tool(tools: Any, param: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, tool) for each of at most MAX_TOOLS tool objects; 400 naming what is not one."""
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise invalid(param, f"an array of at most {MAX_TOOLS} tools")
    for i, tool in enumerate(tools):
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            raise invalid(where, "an object")
        yield where, tool


@js.describes(js.array(js.obj({"type": js.enum(("function", "custom"))}, required=["type"]), max_items=MAX_TOOLS))
def check_tools(tools: Any, param: str) -> None:
    """`tools`: at most 128 function tools (a name, a description, `parameters` an object) or custom tools."""
    for where, tool in each_tool(tools, param):
        kind = tool.get("type")
        if kind == "function":
            check_function_definition(member(tool, "function", where), f"{where}.function")
        elif kind == "custom":
            custom = member(tool, "custom", where)
            check_str(required(custom, "name", f"{where}.custom"), f"{where}.custom.name")
            optional_str(custom, "description", f"{where}.custom")
            if custom.get("format") is not None:
                check_object(custom["format"], f"{where}.custom.format")
        else:
            check_choice(kind, f"{where}.type", ("function", "custom"))


@js.describes(js.array(_FUNCTION, max_items=MAX_TOOLS))
def check_functions(functions: Any, param: str) -> None:
    """`functions` (deprecated form of `tools`): at most 128 function definitions."""
    if not isinstance(functions, list) or len(functions) > MAX_TOOLS:
        raise invalid(param, f"an array of at most {MAX_TOOLS} functions")
    for i, function in enumerate(functions):
        if not isinstance(function, dict):
            raise invalid(f"{param}[{i}]", "an object")
        check_function_definition(function, f"{param}[{i}]")


def check_function_definition(function: dict[str, Any], where: str) -> None:
    """A function definition: a name, an optional description, `parameters` an object, `strict` a boolean."""
    check_name(required(function, "name", where), f"{where}.name")
    optional_str(function, "description", where)
    if function.get("parameters") is not None:
        check_object(function["parameters"], f"{where}.parameters")
    if function.get("strict") is not None:
        check_bool(function["strict"], f"{where}.strict")


@js.describes(
    js.one_of(
        js.enum(_TOOL_CHOICE_MODES),
        js.obj({"type": js.enum(("function", "custom", "allowed_tools"))}, required=["type"]),
    )
)
def check_tool_choice(choice: Any, param: str) -> None:
    """`tool_choice`: none, auto, required, or an object naming a function, a custom tool or allowed tools."""
    if isinstance(choice, str):
        check_choice(choice, param, _TOOL_CHOICE_MODES)
        return
    if not isinstance(choice, dict):
        raise invalid(param, "'none', 'auto', 'required' or an object")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        named = member(choice, kind, param)
        check_str(required(named, "name", f"{param}.{kind}"), f"{param}.{kind}.name")
    elif kind == "allowed_tools":
        allowed = member(choice, "allowed_tools", param)
        check_choice(
            required(allowed, "mode", f"{param}.allowed_tools"), f"{param}.allowed_tools.mode", ("auto", "required")
        )
        tools = required(allowed, "tools", f"{param}.allowed_tools")
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise invalid(f"{param}.allowed_tools.tools", "an array of tool objects")
    else:
        check_choice(kind, f"{param}.type", ("function", "custom", "allowed_tools"))


@js.describes(js.one_of(js.enum(("none", "auto")), js.obj({"name": js.string()}, required=["name"])))
def check_function_call(choice: Any, param: str) -> None:
    """`function_call` (deprecated form of `tool_choice`): none, auto or {"name": ...}."""
    if isinstance(choice, str):
        check_choice(choice, param, ("none", "auto"))
    elif isinstance(choice, dict):
        check_str(required(choice, "name", param), f"{param}.name")
    else:
        raise invalid(param, "'none', 'auto' or an object with a 'name'")


@js.describes(js.obj({"type": js.enum(("text", "json_object", "json_schema"))}, required=["type"]))
def check_response_format(value: Any, param: str) -> None:
    """`response_format`: text, json_object, or json_schema with a name and a schema object."""
    if not isinstance(value, dict):
        raise invalid(param, "an object with a 'type'")
    kind = value.get("type")
    if kind == "json_schema":
        schema = member(value, "json_schema", param)
        where = f"{param}.json_schema"
        check_name(required(schema, "name", where), f"{where}.name")
        optional_str(schema, "description", where)
        if schema.get("schema") is not None:
            check_object(schema["schema"], f"{where}.schema")
        if schema.get("strict") is not None:
            check_bool(schema["strict"], f"{where}.strict")
    elif kind not in ("text", "json_object"):
        check_choice(kind, f"{param}.type", ("text", "json_object", "json_schema"))
