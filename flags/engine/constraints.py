"""Constraint operators of the Unleash client specification, compiled once.

Each constraint becomes a closure ``check(context) -> bool``: values are parsed
when the state is compiled (numbers, dates, semvers, regexes, networks), never
per evaluation.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.regex import MAX_INPUT_LENGTH, RegexRefused, compile_regex

from .errors import EngineError
from .semver import parse_semver

Check = Callable[[dict], bool]

# Context fields that live at the top level of an Unleash context; any other
# name is looked up in ``properties``.
TOP_LEVEL = frozenset({"userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime"})

OPERATORS = frozenset(
    {
        "IN", "NOT_IN",
        "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH",
        "NUM_EQ", "NUM_GT", "NUM_GTE", "NUM_LT", "NUM_LTE",
        "DATE_AFTER", "DATE_BEFORE",
        "SEMVER_EQ", "SEMVER_GT", "SEMVER_GTE", "SEMVER_LT", "SEMVER_LTE",
        "REGEX", "IN_CIDR",
    }
)


def context_value(context: dict, name: str) -> Any:
    """The value of a context field: top-level for Unleash's own fields, else a property."""
    if name in TOP_LEVEL:
        value = context.get(name)
        if value is None and name == "currentTime":
            return None
        return value
    props = context.get("properties")
    if isinstance(props, dict) and name in props:
        return props[name]
    return context.get(name) if name not in ("properties",) else None


def parse_date(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def compile_constraint(constraint: Any, *, strict: bool = False) -> Check:
    """Compile one constraint dict into a check; raise EngineError if it is malformed.

    An unknown operator is malformed when ``strict`` (writes from the admin and
    the API); otherwise it evaluates to false, as Unleash clients treat operators
    newer than themselves.
    """
    if not isinstance(constraint, dict):
        raise EngineError("a constraint must be an object")
    name = constraint.get("contextName")
    if not isinstance(name, str) or not name:
        raise EngineError("a constraint needs a contextName")
    op = constraint.get("operator")
    if op not in OPERATORS:
        if strict or not isinstance(op, str):
            raise EngineError(f"constraint on '{name}': unknown operator {op!r}")
        return lambda ctx: False
    values = constraint.get("values")
    if values is None:
        values = []
    if not isinstance(values, list):
        raise EngineError(f"constraint on '{name}': values must be a list")
    single = constraint.get("value")
    inverted = bool(constraint.get("inverted", False))
    ci = bool(constraint.get("caseInsensitive", False))
    check = _build(name, op, [_str(v) for v in values if v is not None], single, ci, strict)
    if inverted:
        return lambda ctx: not check(ctx)
    return check


def _build(name: str, op: str, values: list[str], single: Any, ci: bool, strict: bool = False) -> Check:
    if op in ("IN", "NOT_IN"):
        allowed = frozenset(values)
        if op == "IN":
            return lambda ctx: _str(context_value(ctx, name)) in allowed
        return lambda ctx: _str(context_value(ctx, name)) not in allowed

    if op.startswith("STR_"):
        needles = [v.lower() for v in values] if ci else list(values)

        def str_op(ctx: dict) -> bool:
            raw = context_value(ctx, name)
            if raw is None:
                return False
            hay = _str(raw)
            if ci:
                hay = hay.lower()
            if op == "STR_CONTAINS":
                return any(n in hay for n in needles)
            if op == "STR_STARTS_WITH":
                return any(hay.startswith(n) for n in needles)
            return any(hay.endswith(n) for n in needles)

        return str_op

    if op.startswith("NUM_"):
        target = _to_float(single if single is not None else (values[0] if values else None))
        if target is None:
            return lambda ctx: False
        cmp = {
            "NUM_EQ": lambda a: a == target,
            "NUM_GT": lambda a: a > target,
            "NUM_GTE": lambda a: a >= target,
            "NUM_LT": lambda a: a < target,
            "NUM_LTE": lambda a: a <= target,
        }[op]

        def num_op(ctx: dict) -> bool:
            actual = _to_float(context_value(ctx, name))
            return actual is not None and cmp(actual)

        return num_op

    if op.startswith("DATE_"):
        target = parse_date(single if single is not None else (values[0] if values else None))
        if target is None:
            return lambda ctx: False

        def date_op(ctx: dict) -> bool:
            raw = context_value(ctx, name)
            actual = parse_date(raw) if raw is not None else (datetime.now(UTC) if name == "currentTime" else None)
            if actual is None:
                return False
            return actual > target if op == "DATE_AFTER" else actual < target

        return date_op

    if op.startswith("SEMVER_"):
        target = parse_semver(_str(single if single is not None else (values[0] if values else None)))
        if target is None:
            return lambda ctx: False

        def semver_op(ctx: dict) -> bool:
            actual = parse_semver(_str(context_value(ctx, name)))
            if actual is None:
                return False
            if op == "SEMVER_EQ":
                return actual == target
            if op == "SEMVER_GT":
                return actual > target
            if op == "SEMVER_GTE":
                return actual >= target
            if op == "SEMVER_LTE":
                return actual <= target
            return actual < target

        return semver_op

    if op == "REGEX":
        # RE2 (core.regex): Unleash's own dialect, linear time. A pattern
        # RE2 refuses is malformed on writes and never matches otherwise, as in
        # Unleash's SDKs; a text over MAX_INPUT_LENGTH characters never matches.
        pattern = single if single is not None else (values[0] if values else None)
        if not isinstance(pattern, str):
            return lambda ctx: False
        try:
            rx = compile_regex(pattern, ci)
        except RegexRefused as exc:
            if strict:
                raise EngineError(f"constraint on '{name}': {exc}") from exc
            return lambda ctx: False

        def regex_op(ctx: dict) -> bool:
            raw = context_value(ctx, name)
            if raw is None:
                return False
            text = _str(raw)
            if len(text) > MAX_INPUT_LENGTH:
                return False
            try:
                return rx.search(text) is not None
            except UnicodeEncodeError:  # a lone surrogate: refused at input, never a 500 here
                return False

        return regex_op

    # IN_CIDR: invalid entries are ignored when valid ones exist.
    networks = []
    for v in values:
        try:
            networks.append(ipaddress.ip_network(v.strip(), strict=False))
        except ValueError:
            continue

    def cidr_op(ctx: dict) -> bool:
        raw = context_value(ctx, name)
        if raw is None:
            return False
        try:
            ip = ipaddress.ip_address(_str(raw).strip())
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in networks)

    return cidr_op
