"""JSON Schema (draft 2020-12) rules, one public function each, called by the
services, the admin, the API and imports alike:

- :func:`schema_validate`: may this schema be stored for a key (a valid schema,
  its default and metadata, no stored value broken)?
- :func:`schema_breaking_values`: which stored values of a key a schema breaks;
- :func:`config_validate`: may this value be stored for a key (the stored-JSON
  rule, then the key's schema)?
"""
from __future__ import annotations

import types
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker, _keywords, _utils, validators
from jsonschema.exceptions import SchemaError, ValidationError

from core.api.renderers import dumps
from core.errors import ValidationFailed
from core.jsonvalue import validate_json_value
from core.regex import RegexRefused, compile_regex, regex_check, regex_search

from .models import ConfigEntry, ConfigSchema

# --- regular expressions on RE2 --------------------------------------------------
# jsonschema matches ``pattern``, ``patternProperties`` (and, through them,
# ``additionalProperties`` and ``unevaluatedProperties``) with Python's ``re``,
# which backtracks: a schema's pattern could hold a write for minutes. Every one
# of those keywords runs on RE2 here (core.regex), and the ``regex``
# format (the meta-schema's check of a pattern) is RE2's, so a pattern RE2
# cannot run is refused when the schema is registered.


def _matches(pattern: str, text: str) -> bool:
    """Whether a ``patternProperties`` pattern matches a property name. A refused
    pattern matches nothing (``patternProperties`` reports it, and schema_check
    refuses it at registration); so does a name over MAX_INPUT_LENGTH."""
    try:
        return regex_search(pattern, text)
    except RegexRefused:
        return False


def _pattern(validator, patrn, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    try:
        found = regex_search(patrn, instance)
    except RegexRefused as exc:
        yield ValidationError(str(exc))
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(validator, patternProperties, instance, schema):  # noqa: N803 (jsonschema's keyword-function signature)
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patternProperties.items():
        try:
            compile_regex(pattern)
        except RegexRefused as exc:
            yield ValidationError(f"patternProperties {pattern!r}: {exc}")
            continue
        for k, v in instance.items():
            if _matches(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _find_additional(instance, schema):
    # jsonschema's find_additional_properties, each pattern on RE2.
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for name in instance:
        if name not in properties and not any(_matches(p, name) for p in patterns):
            yield name


class _Re2AsRe:
    """What jsonschema's helper sees as the ``re`` module: ``search`` on RE2."""

    search = staticmethod(_matches)


def _on_re2(func, **names):
    """A copy of jsonschema's ``func`` whose module globals see ``re`` as RE2 (and
    ``names`` as given); jsonschema's own functions are left as they are."""
    namespace = dict(func.__globals__, re=_Re2AsRe, **names)
    rebound = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    namespace[func.__name__] = rebound  # its recursive calls reach the copy
    return rebound


_additional_properties = _on_re2(_keywords.additionalProperties, find_additional_properties=_find_additional)
# unevaluatedProperties finds the keys other keywords evaluated, patternProperties
# included (``re.search`` in jsonschema._utils): the same helper, on RE2.
_unevaluated_properties = _on_re2(
    _keywords.unevaluatedProperties,
    find_evaluated_property_keys_by_schema=_on_re2(_utils.find_evaluated_property_keys_by_schema),
)

FORMAT_CHECKER = FormatChecker()
FORMAT_CHECKER.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)


@FORMAT_CHECKER.checks("regex", raises=RegexRefused)
def _is_re2(instance: object) -> bool:
    if isinstance(instance, str):
        compile_regex(instance)
    return True


Re2Validator = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "unevaluatedProperties": _unevaluated_properties,
    },
    format_checker=FORMAT_CHECKER,
)
_META_VALIDATOR = Re2Validator(Re2Validator.META_SCHEMA, format_checker=FORMAT_CHECKER)


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
    for error in _META_VALIDATOR.iter_errors(schema):
        exc = SchemaError.create_from(error)
        message = exc.message
        if error.validator == "format" and error.validator_value == "regex":
            shown = error.instance if len(error.instance) <= 80 else error.instance[:77] + "..."
            message = f"{shown!r}: {regex_check(error.instance) or 'not a regular expression'}"
        raise ValidationFailed(
            f"schema is not a valid JSON Schema (draft 2020-12): {json_path(exc.absolute_path)}: {message}",
            details=[{"path": json_path(exc.absolute_path), "message": message}],
            code="invalid_schema",
        )


@lru_cache(maxsize=2048)
def _validator(schema_json: bytes) -> Draft202012Validator:
    # Compiling a validator costs far more than validating; schemas repeat.
    return Re2Validator(orjson.loads(schema_json), format_checker=FORMAT_CHECKER)


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


# --- the rules ----------------------------------------------------------------------


def config_validate(*, key: str, value: Any, is_secret: bool = False) -> None:
    """Validate a value: the stored-JSON rule (depth, size, Unicode), then its key's
    schema (if any); errors carry JSON paths."""
    validate_json_value(value, what=f"value of '{key}'")
    schema = ConfigSchema.objects.filter(key=key).first()
    if schema is not None:
        validate_value(key, schema.schema, value, secret=is_secret)


def schema_breaking_values(*, key: str, schema: Any) -> list[dict[str, Any]]:
    """The stored values of ``key`` that ``schema`` would refuse: each entry with its
    scope and violations (for a secret, the rule that failed, never the value)."""
    broken = []
    for entry in ConfigEntry.objects.filter(key=key).select_related("tenant", "environment"):
        errors = violations(schema, entry.plain_value, secret=entry.is_secret)
        if errors:
            broken.append(
                {
                    "id": entry.pk,
                    "tenant": entry.tenant.slug if entry.tenant_id else None,
                    "environment": entry.environment.slug if entry.environment_id else None,
                    "service_name": entry.service_name or None,
                    "errors": errors,
                }
            )
    return broken


def _about(field: str, check, *args, **kwargs) -> None:
    """Run ``check``; a refusal names the input it concerns (``exc.field``: the
    admin puts the error on that form field)."""
    try:
        check(*args, **kwargs)
    except ValidationFailed as exc:
        exc.field = field
        raise


def _default_value_check(schema: Any, default_value: Any) -> None:
    validate_json_value(default_value, what="default_value")
    if default_value is not None:
        errors = violations(schema, default_value)
        if errors:
            raise ValidationFailed("default_value breaks the schema", details=errors, code="schema_violation")


def _metadata_check(metadata: Any) -> None:
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationFailed("metadata must be a JSON object")
    validate_json_value(metadata, what="metadata")


def _existing_values_check(key: str, schema: Any) -> None:
    broken = schema_breaking_values(key=key, schema=schema)
    if broken:
        raise ValidationFailed(
            f"{len(broken)} existing value(s) of '{key}' would break this schema",
            details={"breaking_values": broken},
            code="schema_breaks_existing_values",
        )


def schema_validate(*, key: str, schema: Any, metadata: Any = None, default_value: Any = None) -> None:
    """Whether ``schema`` may be stored for ``key``; raises ``ValidationFailed``
    (with ``field``: "schema", "metadata" or "default_value") for the first of:
    the stored-JSON rule or draft 2020-12 refusing the schema, metadata that is
    not a JSON object, a ``default_value`` that breaks the schema, existing
    values of the key that would break it (listed with their paths)."""
    _about("schema", validate_json_value, schema, what="schema")
    _about("schema", schema_check, schema)
    _about("metadata", _metadata_check, metadata)
    _about("default_value", _default_value_check, schema, default_value)
    _about("schema", _existing_values_check, key, schema)
