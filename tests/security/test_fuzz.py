"""Fuzzing every documented operation from the OpenAPI schema (schemathesis).

A bounded number of examples per operation with a fixed seed (hypothesis'
``derandomize``), sent with a platform key holding every scope to a live server:
no answer may be a 500, and every answer must match what the schema documents:
its status code is one the operation documents, its Content-Type the documented
one, and its body validates against the documented schema for that status
(config_hub/api/docs.py and the error answers config_hub/api/schema.py adds).
"""
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from core.api.principal import ALL_SCOPES

EXAMPLES_PER_OPERATION = 20
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.mark.django_db(transaction=True)
def test_fuzz__every_operation__never_a_server_error(live_server, make_key, tenant, environments, capsys):
    key = make_key(tenant=None, scopes=sorted(ALL_SCOPES), name="fuzzer")
    headers = {"Authorization": f"ApiKey {key}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    sent = 0
    statuses: Counter = Counter()
    succeeded: set[str] = set()  # operations with at least one 2xx answer checked against its body schema

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                  suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            nonlocal sent
            sent += 1
            response = case.call(base_url=live_server.url, headers=headers)
            statuses[response.status_code] += 1
            if 200 <= response.status_code < 300:
                succeeded.add(f"{case.method} {operation.path}")  # noqa: B023 (run is called within this iteration)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
                return
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect every operation's failure
            # (schemathesis' FailureGroup is a BaseExceptionGroup, not an Exception)
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")

    with capsys.disabled():
        print(f"\nfuzzing: {len(operations)} operations, {sent} generated requests, "
              f"checks: {', '.join(check.__name__ for check in CHECKS)}, {len(failures)} failing operations")
        print(f"{len(succeeded)} operations answered 2xx; answers: " + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items())))
    assert len(operations) >= 20
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_fuzz_finding__non_ascii_digit_ids__404_or_400_never_500(make_key, client_for, tenant, environments):
    """Found by the fuzzer: ``"³".isdigit()`` is True but ``int("³")`` fails, so an id or
    If-Match of superscript digits was a 500."""
    client = client_for(make_key(tenant=None, scopes=sorted(ALL_SCOPES), name="digits"))
    assert client.delete("/api/v1/feature-flags/\u00b3").status_code == 404
    assert client.patch("/api/v1/config/\u00b3", {"value": 1}, format="json").status_code == 404
    created = client.post("/api/v1/config/", {"key": "digits.key", "value": 1, "tenant": tenant.slug}, format="json")
    assert created.status_code == 201, created.content
    stale = client.patch(f"/api/v1/config/{created.json()['id']}", {"value": 2}, format="json", HTTP_IF_MATCH='"\u00b3"')
    assert stale.status_code == 400, stale.content
