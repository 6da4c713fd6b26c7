"""JSON Schema (draft 2020-12) checks shared by the admin, the API and imports."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from config_hub.api.renderers import dumps
from config_hub.errors import ValidationFailed


def json_path(parts) -> str:
    """``$.a[0].b`` for the path of a violation (JSONPath, as API.md asks)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}"
    return out


def schema_check(schema: Any) -> None:
    """Refuse a schema that is not itself a valid draft 2020-12 schema."""
    if not isinstance(schema, (dict, bool)):
        raise ValidationFailed("schema must be a JSON object", details=[{"path": "$", "message": "not an object"}])
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationFailed(
            f"schema is not a valid JSON Schema (draft 2020-12): {exc.message}",
            details=[{"path": json_path(exc.absolute_path), "message": exc.message}],
            code="invalid_schema",
        ) from exc


@lru_cache(maxsize=2048)
def _validator(schema_json: bytes) -> Draft202012Validator:
    # Compiling a validator costs far more than validating; schemas repeat.
    return Draft202012Validator(orjson.loads(schema_json), format_checker=Draft202012Validator.FORMAT_CHECKER)


def violations(schema: Any, value: Any, *, secret: bool = False) -> list[dict[str, str]]:
    """Every violation of ``value`` against ``schema``, each with its JSON path.

    For a secret the messages name the rule that failed but never the value
    (jsonschema's own messages quote the instance).
    """
    validator = _validator(dumps(schema, sort_keys=True))
    out = []
    for error in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path))):
        if secret:
            message = f"does not satisfy '{error.validator}': {dumps(error.validator_value).decode()[:200]}"
        else:
            message = error.message
        out.append({"path": json_path(error.absolute_path), "message": message})
    return out


def validate_value(key: str, schema: Any, value: Any, *, secret: bool = False) -> None:
    errors = violations(schema, value, secret=secret)
    if errors:
        raise ValidationFailed(
            f"value of '{key}' breaks its schema: {errors[0]['path']}: {errors[0]['message']}",
            details=errors,
            code="schema_violation",
        )
