"""Flag reads: the compiled state of a tenant and environment, and evaluation.

The state of (tenant, environment) is compiled once per process and reused
until any flag or segment of the tenant changes: writes bump a generation token
in the shared cache after commit, and each process compares the token it
compiled against with the current one (one cache GET per request). With Redis
down the token cannot be read; a compiled state is then reused for at most
``_LOCAL_TTL`` seconds before it is rebuilt from the database.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from django.core.cache import cache
from django.db.models import F, Q
from django.utils import timezone
from django.utils.timesince import timesince

from core.api.conditional import etag_for
from core.api.renderers import dumps
from core.cache import LocalCache
from core.errors import NotFound
from tenants.models import Environment, Tenant
from tenants.selectors import environment_get

from .engine import CompiledState, Evaluation, compile_state
from .models import Flag, FlagEnvironment, Segment
from .usage import usage_add, usage_record

_LOCAL_TTL = 5.0
# "tenant_id:environment" -> (generation token, built at, compiled state). No TTL:
# each use compares the token (see _state_and_token).
_compiled = LocalCache("flags.compiled", max_items=10_000)
# A tenant's flag generation token, dropped over pub/sub by every flag write.
_generations = LocalCache("flags:gen:", push=True, max_items=10_000)
# Shaped evaluate-all answers (see flags_evaluate_all_shaped). Keys carry the flag
# generation, so the TTL only bounds memory of contexts no longer asked for; an
# answer of 100 flags is some tens of KB, hence the bounds.
_answers = LocalCache("flags.answers", ttl=60.0, max_items=2_000)
_ANSWER_MAX_FLAGS = 1_000
# The single-flag evaluate's answers by request (body, environment header, key's
# environment), under the flag generation they were evaluated at.
_evaluate_answers = LocalCache("flags.evaluate-answers", ttl=60.0, max_items=10_000)
# The Unleash client API's documents with their ETags, under the flag generation
# they were built at (see unleash_client_features).
_unleash_documents = LocalCache("flags.unleash", ttl=60.0, max_items=1_000)


def generation_key(tenant_id: int) -> str:
    return f"flags:gen:{tenant_id}"


def flag_state_document(*, tenant_id: int, environment: str) -> dict[str, Any]:
    """The Unleash ``/client/features`` document of a tenant in an environment (2 queries)."""
    states = {
        fe.flag_id: fe
        for fe in FlagEnvironment.objects.filter(flag__tenant_id=tenant_id, environment__slug=environment)
    }
    features = []
    for flag in Flag.objects.filter(tenant_id=tenant_id).order_by("name"):
        fe = states.get(flag.pk)
        features.append(
            {
                "name": flag.name,
                "enabled": bool(fe and fe.enabled),
                "strategies": fe.strategies if fe else [],
                "variants": flag.variants or [],
                "dependencies": flag.dependencies or [],
            }
        )
    segments = [
        {"id": seg.pk, "name": seg.name, "constraints": seg.constraints}
        for seg in Segment.objects.filter(tenant_id=tenant_id)
    ]
    return {"version": 1, "features": features, "segments": segments}


def unleash_client_features(*, tenant_id: int, environment: str) -> tuple[dict[str, Any], str]:
    """The Unleash client API's ``/client/features`` document (format version 2) of a
    tenant in an environment, and its ETag.

    The same flags, strategies, variants, dependencies and segments the hub's own
    engine evaluates (:func:`flag_state_document`), so an Unleash SDK evaluating
    locally gives the hub's answers. SDKs poll it every few seconds: the document
    is kept per process under the tenant's flag generation (any flag or segment
    write bumps it), so an unchanged poll costs one cache read.
    """
    token = _generations.get_or_load(generation_key(tenant_id), lambda: cache.get(generation_key(tenant_id)))
    key = (tenant_id, environment, token)
    hit = _unleash_documents.get(key) if token is not None else None
    if hit is not None:
        return hit
    document = {**flag_state_document(tenant_id=tenant_id, environment=environment), "version": 2}
    answer = (document, etag_for(document))
    if token is not None:
        _unleash_documents.set(key, answer)
    return answer


def unleash_metrics_record(*, tenant: Tenant, environment: str, toggles: dict[str, int]) -> int:
    """Count the evaluations an Unleash SDK reports (flag name -> yes + no) as the
    hub's own evaluations of those flags; names that are not flags of the tenant
    are ignored. Returns the number of evaluations counted."""
    state = compiled_state(tenant_id=tenant.pk, environment=environment)
    counts = {name: n for name, n in toggles.items() if n > 0 and name in state}
    if counts:
        usage_add(tenant_id=tenant.pk, environment=environment, counts=counts)
    return sum(counts.values())


def compiled_state(*, tenant_id: int, environment: str) -> CompiledState:
    """The compiled state, rebuilt only when the tenant's flags changed."""
    return _state_and_token(tenant_id=tenant_id, environment=environment)[0]


def _state_and_token(*, tenant_id: int, environment: str) -> tuple[CompiledState, str | None]:
    """The compiled state and the generation token it is current for (None when
    the token cannot be read: Redis down)."""
    token = _generations.get_or_load(generation_key(tenant_id), lambda: cache.get(generation_key(tenant_id)))
    key = f"{tenant_id}:{environment}"
    hit = _compiled.get(key)
    if hit is not None:
        hit_token, built_at, state = hit
        if token is not None and hit_token == token:
            return state, token
        if token is None and time.monotonic() - built_at < _LOCAL_TTL:
            return state, None
    now = time.monotonic()
    # The token is read before the state: a write committed while compiling
    # leaves this state under the older token, so the next request rebuilds it.
    state = compile_state(flag_state_document(tenant_id=tenant_id, environment=environment))
    if token is None:
        # First compile since a bump was lost or never made: fix a token so
        # other processes agree on this generation.
        token = str(time.time_ns())
        if not cache.add(generation_key(tenant_id), token, None):
            token = cache.get(generation_key(tenant_id))
    _compiled.set(key, (token, now, state))
    return state, token


def forget_tenant(tenant_id: int) -> None:
    """Drop this process's compiled states of a tenant (after a write of its flags):
    the writing process sees its write at once even when the generation token
    cannot be bumped (Redis down); other processes within ``_LOCAL_TTL``."""
    _compiled.delete_prefix(f"{tenant_id}:")


def environment_slug(slug: str | None) -> str:
    """Check an environment slug exists (cached) and return it."""

    if not slug:
        raise NotFound("no environment given")
    environment_get(slug=slug)
    return slug


def flag_evaluate(*, tenant: Tenant, environment: str, name: str, context: dict) -> Evaluation:
    ctx = dict(context)
    ctx.setdefault("environment", environment)
    result = compiled_state(tenant_id=tenant.pk, environment=environment).evaluate(name, ctx)
    if result.reason != "FLAG_NOT_FOUND":

        usage_record(tenant_id=tenant.pk, environment=environment, names=(name,))
    return result


def flag_evaluate_shaped(*, tenant: Tenant, environment: str, name: str, context: dict,
                         shape: Callable[[Evaluation], Any], request_key: Any = None) -> Any:
    """``shape(flag_evaluate(...))``, or None for a flag that does not exist. With
    ``request_key`` (what the request's context is made of, exactly), the shaped
    answer is kept for :func:`flag_evaluation_reused` when it is repeatable (the
    rules of :func:`flags_evaluate_all_shaped`)."""
    ctx = dict(context)
    ctx.setdefault("environment", environment)
    state, token = _state_and_token(tenant_id=tenant.pk, environment=environment)
    result = state.evaluate(name, ctx)
    if result.reason == "FLAG_NOT_FOUND":
        return None
    shaped = shape(result)
    if request_key is not None and token is not None and state.repeatable(ctx):
        _evaluate_answers.set((tenant.pk, request_key), (environment, name, token, shaped))
    usage_record(tenant_id=tenant.pk, environment=environment, names=(name,))
    return shaped


def flag_evaluation_reused(*, tenant: Tenant, request_key: Any) -> tuple[str, str, Any] | None:
    """(environment, flag name, shaped answer) kept by :func:`flag_evaluate_shaped`
    for the same request, while the tenant's flag generation is the one it was
    evaluated at and its environment exists; else None. The caller counts the
    evaluation (``usage_record``) when it answers."""
    hit = _evaluate_answers.get((tenant.pk, request_key))
    if hit is None:
        return None
    environment, name, token, shaped = hit
    key = generation_key(tenant.pk)
    if _generations.get_or_load(key, lambda: cache.get(key)) != token:
        return None
    environment_get(slug=environment)  # deleted since: NotFound
    return environment, name, shaped


def flags_evaluate_all(*, tenant: Tenant, environment: str, context: dict) -> dict[str, Evaluation]:
    ctx = dict(context)
    ctx.setdefault("environment", environment)
    results = compiled_state(tenant_id=tenant.pk, environment=environment).evaluate_all(ctx)
    if results:

        usage_record(tenant_id=tenant.pk, environment=environment, names=tuple(results))
    return results


def _context_digest(ctx: dict) -> bytes | None:
    """A canonical digest of a context (sorted keys), or None if it has no JSON form."""
    try:
        raw = dumps(ctx, sort_keys=True)
    except (TypeError, orjson.JSONEncodeError):
        return None
    return hashlib.blake2b(raw, digest_size=16).digest()


def flags_evaluate_all_shaped(
    *, tenant: Tenant, environment: str, context: dict, shape: Callable[[dict[str, Evaluation], str], Any],
    count_usage: bool = True,
) -> Any:
    """``shape(flags_evaluate_all(...), environment)``, reused while nothing it depends on changed.

    evaluate-all and OFREP bulk answer every flag of an environment, mostly to
    clients polling with the same context. The shaped answer is kept per process
    under (tenant, environment, flag generation, context, shape): any flag or
    segment write bumps the generation, so the next call evaluates afresh. An
    answer is kept only when the state says it is repeatable for this context
    (no random bucketing, no clock) and the generation is known (Redis up).
    Every call, reused or not, counts one evaluation per flag (unless
    ``count_usage=False``: the OFREP stream computing the answer's ETag). Callers
    must not mutate what they get: it may be shared with later calls.
    """
    ctx = dict(context)
    ctx.setdefault("environment", environment)
    state, token = _state_and_token(tenant_id=tenant.pk, environment=environment)
    key = None
    if token is not None and state.repeatable(ctx):
        digest = _context_digest(ctx)
        if digest is not None:
            key = (tenant.pk, environment, token, digest, shape)
    hit = _answers.get(key) if key is not None else None
    if hit is not None:
        names, shaped = hit
    else:
        results = state.evaluate_all(ctx)
        names, shaped = tuple(results), shape(results, environment)
        if key is not None and len(names) <= _ANSWER_MAX_FLAGS:
            _answers.set(key, (names, shaped))
    if names and count_usage:
        usage_record(tenant_id=tenant.pk, environment=environment, names=names)
    return shaped


def flag_for_tenant(*, tenant_id: int | None, flag_id: int) -> Flag:
    qs = Flag.objects.select_related("tenant", "default_environment")
    if tenant_id is not None:
        qs = qs.filter(tenant_id=tenant_id)
    flag = qs.filter(pk=flag_id).first()
    if flag is None:
        raise NotFound("flag not found")
    return flag


def flag_out(flag: Flag, *, environment: Environment | None = None) -> dict[str, Any]:
    """The API shape of a flag: the ``is_enabled``/``rollout_percentage`` shorthand for one environment, plus every state."""
    states = {fe.environment.slug: fe for fe in flag.states.select_related("environment")}
    env = environment or flag.default_environment
    shown = states.get(env.slug) if env else None
    return {
        "id": flag.pk,
        "name": flag.name,
        "description": flag.description,
        "kind": flag.kind,
        "tenant": flag.tenant.slug,
        "environment": env.slug if env else None,
        "is_enabled": bool(shown and shown.enabled),
        "rollout_percentage": shown.rollout_percentage if shown else None,
        "variants": flag.variants,
        "dependencies": flag.dependencies,
        "version": flag.version,
        "environments": {
            slug: {
                "enabled": fe.enabled,
                "strategies": fe.strategies,
                "rollout_percentage": fe.rollout_percentage,
                "version": fe.version,
                "evaluation_count": fe.evaluation_count,
                "last_evaluated_at": fe.last_evaluated_at.isoformat() if fe.last_evaluated_at else None,
            }
            for slug, fe in sorted(states.items())
        },
        "updated_at": flag.updated_at.isoformat() if flag.updated_at else None,
    }


# --- clean-up candidates (the admin home) ---------------------------------------------

STALE_AFTER = timedelta(days=30)
_ROLLOUT_PARAMETER = {"flexibleRollout": "rollout", "gradualRolloutRandom": "percentage",
                      "gradualRolloutUserId": "percentage", "gradualRolloutSessionId": "percentage"}


def _serves_everyone(strategies) -> bool:
    """True when a state's strategies enable the flag for everyone: none at all, a
    ``default`` strategy, or a flexibleRollout/gradualRollout* at 100 - each without
    constraints or segments (strategies are OR-ed, so one such strategy is enough)."""
    if not strategies:
        return True
    for s in strategies:
        if not isinstance(s, dict) or s.get("constraints") or s.get("segments"):
            continue
        name = s.get("name")
        if name == "default":
            return True
        param = _ROLLOUT_PARAMETER.get(name)
        if param is not None:
            try:
                if float((s.get("parameters") or {}).get(param)) >= 100:
                    return True
            except (TypeError, ValueError):
                continue
    return False


def stale_flags(*, limit: int = 20, now=None) -> list:
    """Flag states worth cleaning up, each with ``stale_reason``: at most ``limit``.

    1. Not evaluated for 30 days. Evaluations are counted in Redis and flushed by
       a beat task into ``FlagEnvironment.last_evaluated_at`` (an UPDATE: it
       touches neither ``updated_at`` nor the history). A state never evaluated
       counts once it has not changed for 30 days.
    2. Served to everyone for 30 days: enabled, the flag has no dependencies, and
       its strategies serve everyone (:func:`_serves_everyone`); "for 30 days"
       comes from the state's audit history (simple-history, one row per save of
       the state): the state has been enabled-for-everyone in every version saved
       since 30 days ago and in the version in force then. A state not saved for
       30 days (``updated_at``) qualifies without reading history; rows without
       any history fall back to ``updated_at`` alone.
    Never-evaluated and least recently evaluated first, then the longest at 100%.
    """
    now = now or timezone.now()
    month_ago = now - STALE_AFTER
    base = FlagEnvironment.objects.select_related("flag__tenant", "environment")
    out, seen = [], set()
    for fe in base.filter(Q(last_evaluated_at__lt=month_ago) | Q(last_evaluated_at__isnull=True, updated_at__lt=month_ago)
                          ).order_by(F("last_evaluated_at").asc(nulls_first=True), "id")[:limit]:
        fe.stale_reason = (f"last evaluated {timesince(fe.last_evaluated_at, now)} ago" if fe.last_evaluated_at
                           else "never evaluated")
        out.append(fe)
        seen.add(fe.pk)
    if len(out) >= limit:
        return out
    full = [fe for fe in base.filter(enabled=True, flag__dependencies=[]).exclude(pk__in=seen).order_by("updated_at", "id")
            if _serves_everyone(fe.strategies)]
    since = {fe.pk: fe.updated_at for fe in full if fe.updated_at < month_ago}
    recent = [fe.pk for fe in full if fe.pk not in since]
    if recent:
        history = FlagEnvironment.history.filter(id__in=recent).order_by("id", "-history_date", "-history_id")
        walking: dict[int, object] = {}
        done: set[int] = set()
        for rec in history.only("id", "history_date", "enabled", "strategies", "history_type"):
            if rec.id in done:
                continue
            if rec.history_type != "-" and rec.enabled and _serves_everyone(rec.strategies):
                walking[rec.id] = rec.history_date  # still everyone's since at least then
                if rec.history_date < month_ago:
                    done.add(rec.id)
            else:
                done.add(rec.id)  # the run of serving everyone starts after this record
        since.update({pk: at for pk, at in walking.items() if at < month_ago})
    for fe in sorted((fe for fe in full if fe.pk in since), key=lambda fe: since[fe.pk]):
        if len(out) >= limit:
            break
        fe.stale_reason = f"served to everyone for {timesince(since[fe.pk], now)}"
        out.append(fe)
    return out
