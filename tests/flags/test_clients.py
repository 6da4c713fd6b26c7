"""Real clients against a live hub: seed 001's ``is_feature_enabled`` and the
OpenFeature Python SDK with its OFREP provider."""
from __future__ import annotations

import pytest
import requests

from tests import factories as make

from . import seed_clients

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def with_key_header(monkeypatch):
    """API.md: where a seed sends no credentials its client adds the one header.

    The seed's code is unchanged; requests' sessions get the header.
    """

    def install(raw_key: str) -> None:
        original = requests.Session.request

        def request(self, method, url, **kwargs):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Authorization", f"ApiKey {raw_key}")
            return original(self, method, url, headers=headers, **kwargs)

        monkeypatch.setattr(requests.Session, "request", request)

    return install


def test_seed001_is_feature_enabled__rollout_workflow__answers_per_user(live_server, tenant, environments, make_key, with_key_header, monkeypatch):
    key = make_key(tenant=tenant, scopes=["flags:read", "flags:write"])
    admin = {"Authorization": f"ApiKey {key}"}
    # The seed's curl workflow: create at 10 %, then PUT {"rollout_percentage": 50.0}.
    flag = requests.post(f"{live_server.url}/api/v1/feature-flags/", json={"name": "new_ui_design", "environment": "production",
                                                                          "is_enabled": True, "rollout_percentage": 10.0}, headers=admin).json()
    with_key_header(key)
    monkeypatch.setattr(seed_clients, "CONFIG_SERVICE_URL", live_server.url)
    monkeypatch.setenv("ENVIRONMENT", "production")
    users = [f"user{i}" for i in range(200)]
    before = {u for u in users if seed_clients.is_feature_enabled("new_ui_design", user_id=u)}

    r = requests.put(f"{live_server.url}/api/v1/feature-flags/{flag['id']}", json={"rollout_percentage": 50.0}, headers=admin)
    after = {u for u in users if seed_clients.is_feature_enabled("new_ui_design", user_id=u)}

    assert r.status_code == 200
    assert 5 <= len(before) <= 40
    assert before < after
    assert 70 <= len(after) <= 130
    assert seed_clients.is_feature_enabled("no_such_flag", user_id="user1") is False


def test_openfeature_sdk__ofrep_provider__boolean_string_object_and_missing(live_server, tenant, environments, make_key):
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode

    env = environments["production"]
    make.flag(tenant, "dark-mode", environment=env, is_enabled=True)
    make.flag(tenant, "banner-text", environment=env, is_enabled=True, kind="string",
              variants=[{"name": "hello", "weight": 1, "payload": {"type": "string", "value": "Hello!"}}])
    make.flag(tenant, "limits", environment=env, is_enabled=True, kind="json",
              variants=[{"name": "big", "weight": 1, "payload": {"type": "json", "value": '{"max": 10}'}}])
    key = make_key(tenant=tenant, scopes=["flags:read"])

    api.set_provider(OFREPProvider(f"{live_server.url}", headers_factory=lambda: {"Authorization": f"ApiKey {key}", "X-Environment": "production"}))
    client = api.get_client()
    ctx = EvaluationContext(targeting_key="user-42", attributes={"plan": "pro"})

    assert client.get_boolean_value("dark-mode", False, ctx) is True
    text = client.get_string_details("banner-text", "default", ctx)
    assert (text.value, text.variant) == ("Hello!", "hello")
    assert client.get_object_value("limits", {}, ctx) == {"max": 10}
    missing = client.get_boolean_details("no-such-flag", False, ctx)
    assert missing.value is False
    assert missing.error_code == ErrorCode.FLAG_NOT_FOUND
    api.clear_providers()


def test_ofrep_bulk__same_state__304_on_if_none_match(live_server, tenant, environments, make_key):
    make.flag(tenant, "a", environment=environments["staging"], is_enabled=True)
    headers = {"Authorization": f"ApiKey {make_key(tenant=tenant, scopes=['flags:read'])}", "X-Environment": "staging"}
    url = f"{live_server.url}/ofrep/v1/evaluate/flags"

    first = requests.post(url, json={"context": {"targetingKey": "u1"}}, headers=headers)
    second = requests.post(url, json={"context": {"targetingKey": "u1"}}, headers={**headers, "If-None-Match": first.headers["ETag"]})

    assert first.status_code == 200
    assert first.json()["flags"] == [{"key": "a", "value": True, "reason": "STATIC", "variant": None, "metadata": {}}]
    assert second.status_code == 304


def test_ofrep__no_environment__400_invalid_context(live_server, tenant, make_key):
    headers = {"Authorization": f"ApiKey {make_key(tenant=tenant, scopes=['flags:read'])}"}

    r = requests.post(f"{live_server.url}/ofrep/v1/evaluate/flags/x", json={"context": {"targetingKey": "u"}}, headers=headers)

    assert r.status_code == 400
    assert r.json()["errorCode"] == "INVALID_CONTEXT"
    assert "environment" in r.json()["errorDetails"]


def test_usage__evaluations_counted_in_redis__flushed_by_task(tenant, environments, make_key, client_for):
    from flags.models import FlagEnvironment
    from flags.tasks import flag_usage_flush_task

    make.flag(tenant, "counted", environment=environments["production"], is_enabled=True)
    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    for i in range(7):
        client.post("/api/v1/feature-flags/evaluate", {"flag_name": "counted", "environment": "production", "user_id": str(i)}, format="json")
    state = FlagEnvironment.objects.get(flag__name="counted")
    assert state.evaluation_count == 0  # nothing written per request

    flag_usage_flush_task()

    state.refresh_from_db()
    assert state.evaluation_count == 7
    assert state.last_evaluated_at is not None
