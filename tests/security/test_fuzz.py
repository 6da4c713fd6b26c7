"""Fuzzing every documented operation from the OpenAPI schema (schemathesis).

A bounded number of examples per operation with a fixed seed (hypothesis'
``derandomize``), sent with a platform key holding every scope to a live server:
no answer may be a 500, and every answer must match what the schema documents.
"""
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from config_hub.api.principal import ALL_SCOPES

EXAMPLES_PER_OPERATION = 20
CHECKS = [schemathesis.checks.not_a_server_error]


@pytest.mark.django_db(transaction=True)
def test_fuzz__every_operation__never_a_server_error(live_server, make_key, tenant, environments, capsys):
    key = make_key(tenant=None, scopes=sorted(ALL_SCOPES), name="fuzzer")
    headers = {"Authorization": f"ApiKey {key}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    sent = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
                  suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            nonlocal sent
            sent += 1
            response = case.call(base_url=live_server.url, headers=headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")
                return
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:300]}")

    with capsys.disabled():
        print(f"\nfuzzing: {len(operations)} operations, {sent} generated requests")
    assert len(operations) >= 20
    assert not failures, "\n".join(failures)
