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
from splitllm.jsonio import NonFinite

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


@cache
def instance_schema() -> dict[str, Any]:
    """The published JSON Schema of the instance format (``splitllm/schema``)."""
    text = resources.files("splitllm").joinpath("schema/instance.schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(instance_schema())


def json_path(parts: Any) -> str:
    """``['requests', 17, 'slo']`` -> ``'requests[17].slo'``.

    Examples
    --------
    >>> json_path(["requests", 17, "slo", "ttft_s"])
    'requests[17].slo.ttft_s'
    """
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _message(error: ValidationError, request_index: list[int]) -> tuple[str, str]:
    """Path and plain-English message for one schema violation.

    ``request_index`` maps the position of a validated request to its position in the file.
    """
    parts = list(error.absolute_path)
    if len(parts) > 1 and parts[0] == "requests":
        parts[1] = request_index[parts[1]]
    path = json_path(parts)
    value = error.instance
    kind = error.validator
    if isinstance(value, NonFinite):
        return path, f"must be a finite number, got {value.text}"
    if kind == "minimum":
        return path, f"must be >= {error.validator_value}, got {value}"
    if kind == "exclusiveMinimum":
        return path, f"must be > {error.validator_value}, got {value}"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"must be {expected}, got {_json_type(value)} {json.dumps(value) if _json_type(value) != 'object' else ''}".rstrip()
    if kind == "required":
        missing = error.message.split("'")[1]
        return json_path([*parts, missing]), "required field is missing"
    if kind == "additionalProperties":
        extra = sorted(set(value) - set(error.schema.get("properties", {})))
        return json_path([*parts, extra[0]]), "unknown key"
    if kind in ("enum", "const"):
        allowed = error.validator_value if kind == "enum" else [error.validator_value]
        return path, f"must be one of {', '.join(map(json.dumps, allowed))}, got {json.dumps(value)}"
    if kind in ("minItems", "minProperties"):
        return path, "must not be empty"
    if kind in ("maxItems",):
        return path, f"must have at most {error.validator_value} items"
    if kind == "minLength":
        return path, "must not be an empty string"
    return path, error.message


def _distinct_requests(data: Any) -> tuple[Any, list[int]]:
    """``data`` with each group of requests that differ only in their id's value cut to
    its first member, and the file position of every request kept.

    Identical requests are common (DESIGN §2); validating one of each keeps loading
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
    errors = sorted(_validator().iter_errors(distinct), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
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
