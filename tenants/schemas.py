"""JSON Schema (draft 2020-12) checks shared by the admin, the API and imports."""
from __future__ import annotations

import types
from functools import lru_cache
from typing import Any

import orjson
from jsonschema import Draft202012Validator, FormatChecker, _keywords, _utils, validators
from jsonschema.exceptions import SchemaError, ValidationError

from core.api.renderers import dumps
from core.errors import ValidationFailed
from core.regex import RegexRefused, compile_regex, regex_check, regex_search

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


def _pattern_properties(validator, patternProperties, instance, schema):
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
