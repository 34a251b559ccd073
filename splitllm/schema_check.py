"""JSON Schema validation with messages that name the JSON path of the bad field."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from splitllm.errors import InputError
from splitllm.jsonio import NonFinite, json_path
from splitllm import resources as table

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def published_schema(name: str) -> dict[str, Any]:
    """The schema file ``splitllm/schema/<name>.schema.json`` as shipped."""
    text = resources.files("splitllm").joinpath(f"schema/{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def table_parts(name: str) -> dict[tuple[str, ...], dict[str, dict[str, Any]]]:
    """What the resources table (:mod:`splitllm.resources`) says a schema must hold: for
    each object's path in the schema, a property per resource. The instance schema takes
    every limit read from ``slo.<name>``; the solution schema every figure per request and
    every coupled resource's total. A row missing from the published file is added with a
    plain description (a test keeps the published files complete)."""
    seconds_or_bytes = {"s": "#/$defs/seconds", "B": "#/$defs/bytes"}
    if name == "instance":
        slo = {
            res.limit_name: {"$ref": seconds_or_bytes[res.unit], "description": f"Bound on the request's {res.label} ({res.unit})."}
            for res in table.REQUEST_LIMITS if res.limit_field.startswith("slo.")
        }
        return {("properties", "requests", "items", "properties", "slo", "properties"): slo}
    if name == "solution":
        figure = lambda res: {"$ref": "#/$defs/optionalFigure", "description": f"{res.label} ({res.unit}); 0 or more, or null."}  # noqa: E731
        return {
            ("properties", "requests", "items", "properties"): {res.figure: figure(res) for res in table.RESOURCES},
            ("properties", "totals", "properties"): {res.figure: figure(res) for res in table.COUPLED},
        }
    return {}


@cache
def _load_schema(name: str) -> dict[str, Any]:
    schema = published_schema(name)
    for path, parts in table_parts(name).items():
        node = schema
        for key in path:
            node = node[key]
        for prop, entry in parts.items():
            node.setdefault(prop, entry)
    return schema


def instance_schema() -> dict[str, Any]:
    """The published JSON Schema of the instance format (``splitllm/schema``)."""
    return _load_schema("instance")


def solution_schema() -> dict[str, Any]:
    """The published JSON Schema of the solution file format (``splitllm/schema``)."""
    return _load_schema("solution")


def _is_strict_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema counts 5.0 as an integer; a token count written 5.0 or 1e308 is a
    # mistake, so only integer literals pass.
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = jsonschema.validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


@cache
def _validator(name: str) -> Draft202012Validator:
    schema = _load_schema(name) if name != "profile" else {**_load_schema("instance"), "$ref": "#/$defs/profile"}
    if name == "profile":  # the profile definition inside the instance schema, on its own
        schema = {k: v for k, v in schema.items() if k in ("$schema", "$id", "$defs", "$ref")}
    return _StrictValidator(schema)  # type: ignore[no-any-return]


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _bound(value: float) -> str:
    """A schema bound as written in the schema: ``1e+07`` -> ``1e7``."""
    mantissa, _, exponent = f"{value:.6g}".partition("e")
    return mantissa + (f"e{int(exponent)}" if exponent else "")


def _show(value: Any, width: int = 60) -> str:
    """A value as short JSON text for a one-line message."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= width else text[: width - 3] + "..."


def _message(error: ValidationError, request_index: list[int]) -> tuple[str, str]:
    """Path and plain-English message for one schema violation.

    ``request_index`` maps the position of a validated request to its position in the file.
    """
    parts = list(error.absolute_path)
    if len(parts) > 1 and parts[0] == "requests" and isinstance(parts[1], int) and parts[1] < len(request_index):
        parts[1] = request_index[parts[1]]
    path = json_path(parts)
    value = error.instance
    kind = error.validator
    if isinstance(value, NonFinite):
        return path, f"must be a finite number, got {value.text}" + (" (too large for a float)" if value.overflow else "")
    if kind == "minimum":
        return path, f"must be >= {error.validator_value}, got {_show(value)}"
    if kind == "maximum":
        return path, f"must be <= {_bound(error.validator_value)}, got {_show(value)}"
    if kind == "exclusiveMinimum":
        return path, f"must be > {error.validator_value}, got {_show(value)}"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        shown = _show(value) if _json_type(value) not in ("object", "array") else ""
        return path, f"must be {expected}, got {_json_type(value)} {shown}".rstrip()
    if kind == "required":
        missing = error.message.split("'")[1]
        return json_path([*parts, missing]), "required field is missing"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return json_path([*parts, extra[0]]), "unknown key"
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return path, f"must be one of {', '.join(map(json.dumps, allowed))}, got {_show(value)}"
    if kind in ("minItems", "minProperties"):
        return path, "must not be empty"
    if kind in ("maxItems",):
        return path, f"must have at most {error.validator_value} items"
    if kind == "pattern" and error.validator_value == "^[CS]+$":
        return path, f"must be a string of letters C/S (C = client, S = server), got {_show(value)}"
    if kind == "minLength":
        return path, "must not be an empty string"
    return path, error.message if len(error.message) <= 120 else error.message[:117] + "..."


def _distinct_requests(data: Any) -> tuple[Any, list[int]]:
    """``data`` with each group of requests that differ only in their id's value cut to
    its first member, and the file position of every request kept.

    Identical requests are common; validating one of each keeps loading
    100,000 requests fast. Errors then name the first request of a bad group.
    """
    requests = data.get("requests") if isinstance(data, dict) else None
    if not isinstance(requests, list):
        return data, list(range(len(requests))) if isinstance(requests, list) else []
    first: dict[str, int] = {}
    for i, request in enumerate(requests):
        if isinstance(request, dict):
            rest = {k: v for k, v in request.items() if k != "id"}
            key = type(request.get("id")).__name__ + json.dumps(rest, sort_keys=True, default=repr)
        else:
            key = repr(request)
        first.setdefault(key, i)
    kept = sorted(first.values())
    return {**data, "requests": [requests[i] for i in kept]}, kept


def schema_errors(data: Any, limit: int = 20) -> list[InputError]:
    """Every schema violation of an instance object, shallowest first, at most ``limit``."""
    distinct, request_index = _distinct_requests(data)
    return _collect(_validator("instance"), distinct, limit, request_index)


def solution_schema_errors(data: Any, limit: int = 20) -> list[InputError]:
    """Every schema violation of a solution file's object, shallowest first."""
    requests = data.get("requests") if isinstance(data, dict) else None
    return _collect(_validator("solution"), data, limit, list(range(len(requests) if isinstance(requests, list) else 0)))


def profile_schema_errors(data: Any, path: str = "", limit: int = 20) -> list[InputError]:
    """Every schema violation of a device profile's object; paths start with ``path``."""
    errors = _collect(_validator("profile"), data, limit, [])
    if not path:
        return errors
    return [InputError(f"{path}.{e.path}" if e.path else path, e.message) for e in errors]


def _collect(validator: Draft202012Validator, data: Any, limit: int, request_index: list[int]) -> list[InputError]:
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    out: list[InputError] = []
    seen: set[str] = set()
    for error in errors:
        # a oneOf/anyOf subtree error: report the most specific leaf instead
        leaf = jsonschema.exceptions.best_match([error]) if error.context else error
        path, message = _message(leaf, request_index)
        if path not in seen:
            seen.add(path)
            out.append(InputError(path, message))
        if len(out) >= limit:
            break
    return out
