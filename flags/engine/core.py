"""Feature evaluation with the Unleash client specification's semantics.

``compile_state(doc)`` turns an Unleash ``/client/features`` document into
closures once; ``evaluate(name, context)`` then costs a few dict lookups and,
for percentage strategies, one murmur3 hash. No Django here: this module is
the conformance surface proven against Unleash's shared test vectors.

Why this module is long: strategies, variants, features, the compiled state and
its repeatability analysis are one compiler from an Unleash document to closures;
they share private types (``_Strategy``, ``_Feature``, ``_VariantSet``) and the
vectors test them together. Constraints, the one piece that stands alone, live in
``constraints.py``.
"""
from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mmh3

from .constraints import compile_constraint, context_value
from .errors import EngineError

STRATEGY_SEED = 0
VARIANT_SEED = 86028157

Check = Callable[[dict], bool]

DISABLED_VARIANT_NAME = "disabled"


def normalized_number(identifier: str, group_id: str, seed: int = STRATEGY_SEED, modulus: int = 100) -> int:
    """Unleash's bucketing: murmur3_32("{groupId}:{id}", seed) % modulus + 1."""
    return mmh3.hash(f"{group_id}:{identifier}", seed, signed=False) % modulus + 1


def _percentage(value: Any, what: str) -> float:
    if value is None or value == "":
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise EngineError(f"{what} must be a number 0-100, got {value!r}") from exc
    if not 0 <= number <= 100:
        raise EngineError(f"{what} must be a number 0-100, got {value!r}")
    return number


def _stickiness_value(context: dict, stickiness: str) -> str | None:
    if stickiness in ("default", "", None):
        for name in ("userId", "sessionId"):
            value = context.get(name)
            if value not in (None, ""):
                return str(value)
        return str(random.randint(1, 100_000))
    if stickiness == "random":
        return str(random.randint(1, 100_000))
    value = context_value(context, stickiness)
    return None if value in (None, "") else str(value)


# --- strategies ----------------------------------------------------------------------


def _strategy_check(strategy: dict, feature_name: str) -> tuple[Check, str]:
    """(check, reason) for one strategy's own rule (constraints are added by the caller)."""
    name = strategy.get("name")
    params = strategy.get("parameters") or {}
    if not isinstance(params, dict):
        raise EngineError(f"strategy '{name}': parameters must be an object")
    if name == "default":
        return (lambda ctx: True), "STATIC"
    if name == "userWithId":
        ids = frozenset(p.strip() for p in str(params.get("userIds", "")).split(",") if p.strip())
        return (lambda ctx: str(ctx.get("userId")) in ids if ctx.get("userId") is not None else False), "TARGETING_MATCH"
    if name in ("gradualRolloutUserId", "gradualRolloutSessionId"):
        pct = _percentage(params.get("percentage"), f"strategy '{name}': percentage")
        group = str(params.get("groupId") or feature_name)
        field_name = "userId" if name == "gradualRolloutUserId" else "sessionId"

        def gradual(ctx: dict) -> bool:
            ident = ctx.get(field_name)
            if ident in (None, ""):
                return False
            return pct > 0 and normalized_number(str(ident), group) <= pct

        return gradual, "SPLIT"
    if name == "gradualRolloutRandom":
        pct = _percentage(params.get("percentage"), f"strategy '{name}': percentage")
        return (lambda ctx: pct > 0 and random.randint(1, 100) <= pct), "SPLIT"
    if name == "flexibleRollout":
        pct = _percentage(params.get("rollout"), "strategy 'flexibleRollout': rollout")
        group = str(params.get("groupId") or feature_name)
        stickiness = str(params.get("stickiness") or "default")

        def flexible(ctx: dict) -> bool:
            ident = _stickiness_value(ctx, stickiness)
            if ident is None:
                return False
            return pct > 0 and normalized_number(ident, group) <= pct

        return flexible, ("STATIC" if pct >= 100 else "SPLIT")
    if name == "remoteAddress":
        entries = [p.strip() for p in str(params.get("IPs", "")).split(",") if p.strip()]
        networks, exact = [], set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                exact.add(entry)

        def remote(ctx: dict) -> bool:
            addr = ctx.get("remoteAddress")
            if not addr:
                return False
            if addr in exact:
                return True
            try:
                ip = ipaddress.ip_address(str(addr))
            except ValueError:
                return False
            return any(ip.version == n.version and ip in n for n in networks)

        return remote, "TARGETING_MATCH"
    if name == "applicationHostname":

        hosts = {h.strip().lower() for h in str(params.get("hostNames", "")).split(",") if h.strip()}
        here = socket.gethostname().lower()
        return (lambda ctx: here in hosts), "TARGETING_MATCH"
    if not isinstance(name, str) or not name:
        raise EngineError("a strategy needs a name")
    # An unknown strategy never enables (the specification's rule).
    return (lambda ctx: False), "DEFAULT"


# --- variants --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Variant:
    name: str
    weight: int
    payload: dict | None
    overrides: tuple[tuple[str, frozenset[str]], ...]

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name}
        if self.payload is not None:
            out["payload"] = self.payload
        out["enabled"] = True
        out["feature_enabled"] = True
        return out


@dataclass(frozen=True)
class _VariantSet:
    variants: tuple[_Variant, ...]
    stickiness: str
    total: int
    # More than one variant with a weight: a STATIC match that picked one is a SPLIT.
    split: bool = False

    def choose(self, context: dict, group_id: str) -> _Variant | None:
        for variant in self.variants:
            for field_name, values in variant.overrides:
                value = context_value(context, field_name)
                if value is not None and str(value) in values:
                    return variant
        if self.total <= 0:
            return None
        ident = _stickiness_value(context, self.stickiness)
        if ident is None:
            return None
        target = normalized_number(ident, group_id, VARIANT_SEED, self.total)
        counter = 0
        for variant in self.variants:
            if variant.weight <= 0:
                continue
            counter += variant.weight
            if counter >= target:
                return variant
        return None


def _compile_variants(raw: Any, where: str, default_stickiness: str = "default") -> _VariantSet | None:
    if raw in (None, []):
        return None
    if not isinstance(raw, list):
        raise EngineError(f"{where}: variants must be a list")
    variants = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise EngineError(f"{where}: every variant needs a name")
        try:
            weight = int(item.get("weight", 0) or 0)
        except (TypeError, ValueError) as exc:
            raise EngineError(f"{where}: variant '{item['name']}' weight must be an integer") from exc
        if weight < 0:
            raise EngineError(f"{where}: variant '{item['name']}' weight must not be negative")
        payload = item.get("payload")
        if payload is not None and (not isinstance(payload, dict) or "type" not in payload):
            raise EngineError(f"{where}: variant '{item['name']}' payload needs a type and a value")
        overrides = []
        for ov in item.get("overrides") or []:
            if not isinstance(ov, dict) or not ov.get("contextName"):
                raise EngineError(f"{where}: variant '{item['name']}' override needs a contextName")
            overrides.append((ov["contextName"], frozenset(str(v) for v in ov.get("values") or [])))
        variants.append(_Variant(item["name"], weight, payload, tuple(overrides)))
    stickiness = str(raw[0].get("stickiness") or default_stickiness) if raw else default_stickiness
    return _VariantSet(
        tuple(variants), stickiness, sum(v.weight for v in variants), split=sum(1 for v in variants if v.weight > 0) > 1
    )


# --- features ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Strategy:
    check: Check
    reason: str
    variants: _VariantSet | None
    group_id: str


@dataclass
class Evaluation:
    """The answer for one flag and one context."""

    enabled: bool
    variant: dict
    reason: str
    name: str = ""

    @property
    def payload(self) -> dict | None:
        return self.variant.get("payload")


@dataclass
class _Feature:
    name: str
    enabled: bool
    strategies: tuple[_Strategy, ...]
    variants: _VariantSet | None
    dependencies: tuple[tuple[str, bool, frozenset[str] | None], ...]
    raw: dict = field(repr=False, default_factory=dict)
    # What besides the context its answer may depend on (see ``_needs``).
    needs: frozenset[str] = frozenset()


def _compile_strategy(strategy: Any, feature_name: str, segments: dict[Any, list[Check]], strict: bool = False) -> _Strategy:
    if not isinstance(strategy, dict):
        raise EngineError(f"feature '{feature_name}': a strategy must be an object")
    rule, reason = _strategy_check(strategy, feature_name)
    checks: list[Check] = []
    raw_constraints = strategy.get("constraints") or []
    if not isinstance(raw_constraints, list):
        raise EngineError(f"strategy '{strategy.get('name')}': constraints must be a list")
    for c in raw_constraints:
        checks.append(compile_constraint(c, strict=strict))
    segment_ids = strategy.get("segments") or []
    if not isinstance(segment_ids, list) or not all(_is_segment_id(sid) for sid in segment_ids):
        raise EngineError(f"strategy '{strategy.get('name')}': segments must be a list of ids")
    missing_segment = False
    for sid in segment_ids:
        if sid in segments:
            checks.extend(segments[sid])
        elif str(sid) in segments:
            checks.extend(segments[str(sid)])
        else:
            missing_segment = True
    if (checks or segment_ids) and reason == "STATIC":
        reason = "TARGETING_MATCH"
    params = strategy.get("parameters") or {}
    group_id = str(params.get("groupId") or feature_name)
    # Strategy variants without their own stickiness inherit the strategy's.
    variants = _compile_variants(
        strategy.get("variants"), f"strategy '{strategy.get('name')}'", default_stickiness=str(params.get("stickiness") or "default")
    )

    if missing_segment:
        def check(ctx: dict) -> bool:
            return False
    elif checks:
        all_checks = tuple(checks)

        def check(ctx: dict) -> bool:
            for c in all_checks:
                if not c(ctx):
                    return False
            return rule(ctx)
    else:
        check = rule
    return _Strategy(check, reason, variants, group_id)


def _is_segment_id(value: Any) -> bool:
    """Unleash segment ids are integers; strings are taken too (``"3"`` names 3)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def validate_segment(segment: Any, *, strict: bool = True) -> None:
    """Raise EngineError with a clear message if a segment is not well formed."""
    if not isinstance(segment, dict):
        raise EngineError("a segment must be an object")
    if "id" not in segment:
        raise EngineError("a segment needs an id")
    if not _is_segment_id(segment["id"]):
        raise EngineError(f"a segment's id must be an integer or a string, not {type(segment['id']).__name__}")
    constraints = segment.get("constraints") or []
    if not isinstance(constraints, list):
        raise EngineError(f"segment {segment.get('id')}: constraints must be a list")
    for c in constraints:
        compile_constraint(c, strict=strict)


def _compile_feature(raw: Any, segments: dict, strict: bool = False) -> _Feature:
    if not isinstance(raw, dict):
        raise EngineError("a feature must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise EngineError("a feature needs a name")
    strategies_raw = raw.get("strategies") or []
    if not isinstance(strategies_raw, list):
        raise EngineError(f"feature '{name}': strategies must be a list")
    strategies = tuple(_compile_strategy(s, name, segments, strict) for s in strategies_raw)
    deps = []
    for dep in raw.get("dependencies") or []:
        if not isinstance(dep, dict) or not isinstance(dep.get("feature"), str):
            raise EngineError(f"feature '{name}': a dependency needs a feature name")
        variants = dep.get("variants")
        deps.append((dep["feature"], bool(dep.get("enabled", True)), frozenset(variants) if variants else None))
    return _Feature(
        name=name,
        enabled=bool(raw.get("enabled", False)),
        strategies=strategies,
        variants=_compile_variants(raw.get("variants"), f"feature '{name}'"),
        dependencies=tuple(deps),
        raw=raw,
    )


def validate_feature(feature: Any, segment_ids: set | None = None, *, strict: bool = True) -> None:
    """Raise EngineError with a clear message if a feature (strategies, constraints,
    variants, dependencies) is not well formed. ``strict=False`` keeps unknown
    operators (they evaluate to false, as in Unleash), as compile_state does."""
    fake_segments: dict = {sid: [] for sid in (segment_ids or set())}
    _compile_feature(feature, fake_segments, strict=strict)


_NOT_FOUND = Evaluation(False, {"name": DISABLED_VARIANT_NAME, "enabled": False, "feature_enabled": False}, "FLAG_NOT_FOUND")


class CompiledState:
    """A compiled Unleash state: evaluate flags by name for a context."""

    def __init__(self, features: dict[str, _Feature]):
        self._features = features
        self._needs = frozenset().union(*(f.needs for f in features.values()))

    def names(self) -> list[str]:
        return list(self._features)

    def __contains__(self, name: str) -> bool:
        return name in self._features

    def _is_enabled(self, feature: _Feature, context: dict, depth: int = 0) -> tuple[bool, _Strategy | None, str]:
        if not feature.enabled:
            return False, None, "DISABLED"
        if feature.dependencies and not self._dependencies_met(feature, context, depth):
            return False, None, "DISABLED"
        if not feature.strategies:
            return True, None, "STATIC"
        for strategy in feature.strategies:
            if strategy.check(context):
                return True, strategy, strategy.reason
        return False, None, "DEFAULT"

    def _dependencies_met(self, feature: _Feature, context: dict, depth: int) -> bool:
        for parent_name, want_enabled, variants in feature.dependencies:
            parent = self._features.get(parent_name)
            # Only one level of dependencies is allowed: a parent that depends on
            # something itself fails the child (cycles and chains alike).
            if parent is None or parent.dependencies:
                return False
            enabled, strategy, _ = self._is_enabled(parent, context, depth + 1)
            if enabled != want_enabled:
                return False
            if want_enabled and variants is not None:
                chosen = self._variant(parent, strategy, context, enabled)
                if chosen["name"] not in variants:
                    return False
        return True

    def _variant(self, feature: _Feature, strategy: _Strategy | None, context: dict, enabled: bool) -> dict:
        if not enabled:
            return {"name": DISABLED_VARIANT_NAME, "enabled": False, "feature_enabled": False}
        if strategy is not None and strategy.variants is not None:
            chosen = strategy.variants.choose(context, strategy.group_id)
            if chosen is not None:
                return chosen.as_dict()
        if feature.variants is not None:
            chosen = feature.variants.choose(context, feature.name)
            if chosen is not None:
                return chosen.as_dict()
        return {"name": DISABLED_VARIANT_NAME, "enabled": False, "feature_enabled": True}

    def evaluate(self, name: str, context: dict | None = None) -> Evaluation:
        """Evaluate one flag; an unknown flag is disabled with reason FLAG_NOT_FOUND."""
        feature = self._features.get(name)
        if feature is None:
            return _NOT_FOUND
        return self._evaluate(feature, context or {})

    def _evaluate(self, feature: _Feature, ctx: dict) -> Evaluation:
        if not feature.enabled:
            # The commonest answer, without the strategy and variant walk.
            return Evaluation(False, {"name": DISABLED_VARIANT_NAME, "enabled": False, "feature_enabled": False},
                              "DISABLED", feature.name)
        enabled, strategy, reason = self._is_enabled(feature, ctx)
        variant = self._variant(feature, strategy, ctx, enabled)
        if enabled and reason == "STATIC" and variant["enabled"]:
            variant_set = strategy.variants if strategy is not None and strategy.variants is not None else feature.variants
            if variant_set is not None and variant_set.split:
                reason = "SPLIT"
        return Evaluation(enabled, variant, reason, feature.name)

    def evaluate_all(self, context: dict | None = None) -> dict[str, Evaluation]:
        ctx = context or {}
        one = self._evaluate
        return {name: one(feature, ctx) for name, feature in self._features.items()}

    def repeatable(self, context: dict) -> bool:
        """True when evaluating every flag for ``context`` again gives the same
        answers: no random bucketing (``gradualRolloutRandom``, random stickiness,
        default stickiness without userId/sessionId) and no clock (DATE_*
        constraints on currentTime compare with now when it is absent). Only such
        answers may be reused; anything else is evaluated afresh every time."""
        needs = self._needs
        if not needs:
            return True
        if "random" in needs:
            return False
        if "identity" in needs and context.get("userId") in (None, "") and context.get("sessionId") in (None, ""):
            return False
        if "clock" in needs and context.get("currentTime") is None:
            return False
        return True


def compile_state(doc: Any, *, strict: bool = False) -> CompiledState:
    """Compile an Unleash ``/client/features`` document; EngineError names what it cannot take."""
    if not isinstance(doc, dict):
        raise EngineError("the state must be an object with 'features'")
    raw_segments = doc.get("segments") or []
    if not isinstance(raw_segments, list):
        raise EngineError("'segments' must be a list")
    segments: dict[Any, list[Check]] = {}
    for seg in raw_segments:
        validate_segment(seg, strict=strict)
        segments[seg["id"]] = [compile_constraint(c, strict=strict) for c in seg.get("constraints") or []]
    raw_features = doc.get("features") or []
    if not isinstance(raw_features, list):
        raise EngineError("'features' must be a list")
    features: dict[str, _Feature] = {}
    for raw in raw_features:
        try:
            feature = _compile_feature(raw, segments, strict)
        except EngineError as exc:
            label = raw.get("name") if isinstance(raw, dict) else "?"
            if str(exc).startswith(f"feature '{label}'"):
                raise
            raise EngineError(f"feature '{label}': {exc}") from exc
        features[feature.name] = feature
    _attach_needs(features, {seg["id"]: seg.get("constraints") or [] for seg in raw_segments})
    return CompiledState(features)


# --- repeatability ----------------------------------------------------------------------


def _stickiness_needs(stickiness: str) -> set[str]:
    # Mirrors _stickiness_value: default falls back to random without userId/sessionId.
    if stickiness in ("default", ""):
        return {"identity"}
    if stickiness == "random":
        return {"random"}
    return set()


def _variants_needs(raw: Any, default_stickiness: str) -> set[str]:
    if not raw:
        return set()
    return _stickiness_needs(str(raw[0].get("stickiness") or default_stickiness))


def _constraints_need_clock(constraints: list) -> bool:
    return any(
        isinstance(c, dict) and c.get("contextName") == "currentTime" and c.get("operator") in ("DATE_AFTER", "DATE_BEFORE")
        for c in constraints
    )


def _needs(raw: dict, segments: dict[Any, list]) -> set[str]:
    """What besides the context a feature's answer may depend on: "random" (always
    random), "identity" (random unless userId or sessionId is given), "clock" (now,
    unless currentTime is given). Read from the raw feature, conservatively: a
    disabled feature answers DISABLED whatever its strategies say."""
    if not raw.get("enabled", False):
        return set()
    needs: set[str] = set()
    for strategy in raw.get("strategies") or []:
        name = strategy.get("name")
        params = strategy.get("parameters") or {}
        stickiness = str(params.get("stickiness") or "default")
        if name == "gradualRolloutRandom":
            needs.add("random")
        elif name == "flexibleRollout":
            needs |= _stickiness_needs(stickiness)
        needs |= _variants_needs(strategy.get("variants"), stickiness)
        constraints = list(strategy.get("constraints") or [])
        for sid in strategy.get("segments") or []:
            constraints.extend(segments.get(sid, segments.get(str(sid), [])))
        if _constraints_need_clock(constraints):
            needs.add("clock")
    needs |= _variants_needs(raw.get("variants"), "default")
    return needs


def _attach_needs(features: dict[str, _Feature], segments: dict[Any, list]) -> None:
    own = {name: _needs(f.raw, segments) for name, f in features.items()}
    for name, feature in features.items():
        needs = set(own[name])
        for parent, _, _ in feature.dependencies:
            # A child's answer holds its parent's: its needs too.
            needs |= own.get(parent, set())
        feature.needs = frozenset(needs)


def apply_delta(state: dict | None, events: list[dict]) -> dict:
    """Apply Unleash delta-API events (hydration, feature-updated/removed,
    segment-updated/removed) to a state document and return the new document."""
    features = {f["name"]: f for f in (state or {}).get("features", [])}
    segments = {s["id"]: s for s in (state or {}).get("segments", [])}
    for event in events:
        kind = event.get("type")
        if kind == "hydration":
            features = {f["name"]: f for f in event.get("features", [])}
            segments = {s["id"]: s for s in event.get("segments", [])}
        elif kind == "feature-updated":
            features[event["feature"]["name"]] = event["feature"]
        elif kind == "feature-removed":
            features.pop(event.get("featureName"), None)
        elif kind == "segment-updated":
            segments[event["segment"]["id"]] = event["segment"]
        elif kind == "segment-removed":
            segments.pop(event.get("segmentId"), None)
        else:
            raise EngineError(f"unknown delta event type {kind!r}")
    return {"version": 1, "features": list(features.values()), "segments": list(segments.values())}
