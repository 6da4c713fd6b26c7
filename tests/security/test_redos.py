"""Regular expressions written by callers run on RE2: no pattern can hold a worker.

``^(a+)+$`` against 32 ``a`` and a ``!`` backtracks for minutes on Python's
``re`` (docs/security.md has the figures). The proofs that it no longer hangs
run in a subprocess with a timeout, so a regression fails the test instead of
freezing the suite.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EVIL_PATTERN = "^(a+)+$"
EVIL_INPUT = "a" * 32 + "!"


def _run(code: str, *, django: bool = False) -> str:
    env = dict(os.environ)
    if django:
        code = "import django; django.setup()\n" + code
    # Generous: the answer takes microseconds; Python's re takes minutes.
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_flag_regex_constraint__catastrophic_pattern__answers_false_without_hanging():
    state = {"version": 1, "features": [{"name": "f", "enabled": True, "strategies": [{"name": "default", "constraints": [
        {"contextName": "userId", "operator": "REGEX", "value": EVIL_PATTERN}]}]}]}
    code = (
        "import json, sys\n"
        "from flags.engine import compile_state\n"
        f"s = compile_state(json.loads({json.dumps(json.dumps(state))}))\n"
        f"print(json.dumps([s.evaluate('f', {{'userId': {EVIL_INPUT!r}}}).enabled,"
        " s.evaluate('f', {'userId': 'aaaa'}).enabled]))\n"
    )

    assert json.loads(_run(code)) == [False, True]


def test_schema_pattern__catastrophic_pattern__value_refused_without_hanging():
    code = (
        "import json\n"
        "from tenants.schemas import violations\n"
        f"schema = {{'type': 'object', 'properties': {{'name': {{'type': 'string', 'pattern': {EVIL_PATTERN!r}}}}},"
        f" 'patternProperties': {{{EVIL_PATTERN!r}: {{'type': 'integer'}}}}, 'unevaluatedProperties': False}}\n"
        f"value = {{'name': {EVIL_INPUT!r}, {EVIL_INPUT!r}: 1}}\n"
        "print(json.dumps([e['path'] for e in violations(schema, value)]))\n"
    )

    assert json.loads(_run(code, django=True)) == ["$", "$.name"]


@pytest.mark.django_db
def test_schema_api__catastrophic_pattern__value_write_answers_400(tenant, make_key, client_for):
    platform = client_for(make_key(tenant=None, scopes=["admin"], name="platform"))
    writer = client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write"], name="writer"))
    registered = platform.post("/api/v1/schemas/", {"key": "user.name", "schema": {"type": "string", "pattern": EVIL_PATTERN}},
                               format="json")

    r = writer.post("/api/v1/config/", {"key": "user.name", "value": EVIL_INPUT}, format="json")
    ok = writer.post("/api/v1/config/", {"key": "user.name", "value": "aaa"}, format="json")

    assert registered.status_code == 201
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "schema_violation"
    assert r.json()["error"]["details"] == [{"path": "$", "message": f"{EVIL_INPUT!r} does not match {EVIL_PATTERN!r}"}]
    assert ok.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("schema,path", [
    ({"type": "string", "pattern": "(?<=a)b"}, "$.pattern"),
    ({"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a)\\1$"}}}, "$.properties.code.pattern"),
    ({"type": "object", "patternProperties": {"^(?!x)": {}}}, "$.patternProperties"),
])
def test_schema_api__pattern_re2_cannot_run__400_naming_the_path(schema, path, make_key, client_for, default_tenant):
    from tenants.models import ConfigSchema

    platform = client_for(make_key(tenant=None, scopes=["admin"], name="platform"))

    r = platform.post("/api/v1/schemas/", {"key": "k", "schema": schema}, format="json")

    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_schema"
    assert error["details"][0]["path"] == path
    assert "not a regular expression the RE2 engine accepts" in error["details"][0]["message"]
    assert not ConfigSchema.objects.filter(key="k").exists()


@pytest.mark.django_db
def test_schema_api__pattern_over_length_limit__400(make_key, client_for, default_tenant):
    platform = client_for(make_key(tenant=None, scopes=["admin"], name="platform"))

    r = platform.post("/api/v1/schemas/", {"key": "k", "schema": {"type": "string", "pattern": "a" * 1025}}, format="json")

    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["path"] == "$.pattern"
    assert r.json()["error"]["details"][0]["message"].endswith("regular expression longer than 1024 characters")


@pytest.mark.django_db
def test_flag_api__regex_constraint_re2_cannot_run__400_on_write(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:write"]))

    r = client.post("/api/v1/feature-flags/", {"name": "look", "environment": "production", "is_enabled": True,
                                                "strategies": [{"name": "default", "constraints": [
                                                    {"contextName": "email", "operator": "REGEX", "value": "(?<=@)corp$"}]}]},
                    format="json")

    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(
        "constraint on 'email': not a regular expression the RE2 engine accepts (invalid perl operator: (?<=)")


@pytest.mark.django_db
def test_flag_api__catastrophic_regex__evaluates_with_the_answer(tenant, environments, make_key, client_for):
    client = client_for(make_key(tenant=tenant, scopes=["flags:read", "flags:write"]))
    created = client.post("/api/v1/feature-flags/", {"name": "evil", "environment": "production", "is_enabled": True,
                                                      "strategies": [{"name": "default", "constraints": [
                                                          {"contextName": "userId", "operator": "REGEX", "value": EVIL_PATTERN}]}]},
                          format="json")

    answers = [client.post("/api/v1/feature-flags/evaluate", {"flag_name": "evil", "environment": "production",
                                                              "context": {"userId": user}}, format="json").json()["enabled"]
               for user in (EVIL_INPUT, "aaaa", "a" * 70_000)]

    assert created.status_code == 201
    assert answers == [False, True, False]  # over MAX_INPUT_LENGTH: never matched
