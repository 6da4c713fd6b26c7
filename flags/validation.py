"""What a flag or a segment must satisfy before it is stored, one public function
per rule, called by the services, the admin forms and both imports (Unleash's
and the tenant import) alike:

- :func:`flag_validate`: a flag's strategies, variants and dependencies are
  well formed (the engine's validators), within the stored-JSON limits, and its
  strategies name only segments of the flag's tenant;
- :func:`segments_owned_check`: the segment-ownership rule alone;
- :func:`tenant_segment_ids`: the segments a tenant has (what the rule checks against);
- :func:`segment_validate`: a segment's constraints are well formed.

``strict=False`` (the Unleash import only) keeps constraint operators and
patterns this hub does not know, and strategies naming :data:`NO_SEGMENT`: they
evaluate to false, as in Unleash's SDKs.
"""
from __future__ import annotations

import json
from typing import Any

from core.errors import ValidationFailed
from core.jsonvalue import JSON_MAX_DEPTH, validate_json_value

from .engine import EngineError, validate_feature, validate_segment
from .models import Segment

# The id of no segment (primary keys start at 1): the Unleash import writes it for a
# segment its document names but does not define, so the strategy never matches (as
# in Unleash) and cannot come to mean a segment created later.
NO_SEGMENT = 0


def tenant_segment_ids(tenant_id: int) -> set:
    return set(Segment.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True))


def segments_owned_check(strategies: Any, segment_ids: set) -> None:
    """A flag's strategies may name only its tenant's segments (``segment_ids``)."""
    for s in strategies or []:
        if not isinstance(s, dict):
            continue
        for sid in s.get("segments") or []:
            if sid not in segment_ids:
                raise ValidationFailed(f"strategy '{s.get('name')}' names segment {sid!r}, which this tenant does not have",
                                       code="invalid_flag")


def flag_json_check(*, strategies: Any = None, variants: Any = None, dependencies: Any = None) -> None:
    """The stored-JSON rule (core.jsonvalue) for what a flag stores, a JSON
    variant payload (a string parsed when evaluated) included."""
    validate_json_value(strategies, what="strategies")
    validate_json_value(variants, what="variants")
    validate_json_value(dependencies, what="dependencies")
    listed = strategies if isinstance(strategies, list) else []
    variant_lists = [variants] + [s.get("variants") for s in listed if isinstance(s, dict)]
    for items in variant_lists:
        for v in items if isinstance(items, list) else []:
            payload = v.get("payload") if isinstance(v, dict) else None
            if isinstance(payload, dict) and payload.get("type") == "json" and isinstance(payload.get("value"), str):
                try:
                    parsed = json.loads(payload["value"])
                except RecursionError:
                    raise ValidationFailed(f"variant '{v.get('name')}' payload is nested deeper than the limit of "
                                           f"{JSON_MAX_DEPTH} levels", code="json_too_deep") from None
                except ValueError:
                    continue  # not JSON: evaluated as the string it is
                validate_json_value(parsed, what=f"variant '{v.get('name')}' payload")


def flag_validate(*, name: str, strategies: list | None, variants: list | None, dependencies: list | None,
                  segment_ids: set | None, strict: bool = True) -> None:
    """Refuse (``ValidationFailed``, code ``invalid_flag`` for a malformed flag) what
    cannot be stored. ``segment_ids`` None: the ownership rule is not checked (a
    form that does not know the tenant yet)."""
    flag_json_check(strategies=strategies, variants=variants, dependencies=dependencies)
    try:
        validate_feature(
            {
                "name": name,
                "enabled": True,
                "strategies": strategies or [],
                "variants": variants or [],
                "dependencies": dependencies or [],
            },
            segment_ids=segment_ids,
            strict=strict,
        )
    except EngineError as exc:
        raise ValidationFailed(str(exc), code="invalid_flag") from exc
    if segment_ids is not None:
        segments_owned_check(strategies, segment_ids if strict else segment_ids | {NO_SEGMENT})


def segment_validate(*, name: str, constraints: Any, strict: bool = True) -> None:
    """A segment's constraints: within the stored-JSON limits and well formed."""
    validate_json_value(constraints, what="constraints")
    try:
        validate_segment({"id": 0, "constraints": constraints}, strict=strict)
    except EngineError as exc:
        raise ValidationFailed(f"segment '{name}': {exc}", code="invalid_segment") from exc
