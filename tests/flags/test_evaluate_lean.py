"""The lean path of POST /api/v1/feature-flags/evaluate answers exactly as the DRF
view does, whether it answered or handed the request over."""
from __future__ import annotations

import json

import pytest
from django.test import RequestFactory

from core import directory
from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def flags(tenant, other_tenant, environments, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        make.flag(tenant, "beta", environment=environments["production"], is_enabled=True, rollout_percentage=50)
        make.flag(tenant, "off", environment=environments["production"], is_enabled=False)
        make.flag(other_tenant, "theirs", environment=environments["production"], is_enabled=True)


def _answer(view, request):
    response = view(request)
    if hasattr(response, "render"):
        response.render()
    return response.status_code, json.loads(response.content) if response.content else None


BODY = {"flag_name": "beta", "environment": "production", "user_id": "user-7"}


@pytest.mark.parametrize("body,options", [
    (BODY, {}),
    ({**BODY, "user_id": "user-8"}, {}),
    ({**BODY, "flag_name": "off"}, {}),
    ({**BODY, "context": {"userId": "u1", "properties": {"region": "eu"}}}, {}),
    ({"flag_name": "beta", "user_id": "user-7"}, {"HTTP_X_ENVIRONMENT": "production"}),
    ({"flag_name": "beta", "user_id": "user-7"}, {}),
    ({**BODY, "flag_name": "missing"}, {}),
    ({**BODY, "flag_name": "theirs"}, {}),
    ({**BODY, "environment": "nowhere"}, {}),
    ({**BODY, "context": {"properties": "not an object"}}, {}),
    ({**BODY, "flag_name": ""}, {}),
    ({"environment": "production"}, {}),
    ([1, 2], {}),
    ("not json", {"raw": True}),
    ('{"flag_name": "beta", "environment": "production", "user_id": NaN}', {"raw": True}),
    (BODY, {"HTTP_X_TENANT_ID": "globex"}),
    (BODY, {"HTTP_ACCEPT": "text/html"}),
    (BODY, {"scopes": ["configs:read"]}),
    (BODY, {"bad_key": True}),
])
def test_lean_evaluate__same_answer_as_the_drf_view(flags, tenant, make_key, body, options):
    from flags.api.views import evaluate as views

    options = dict(options)
    raw_key = make_key(tenant=tenant, scopes=options.pop("scopes", ["flags:read"]))
    if options.pop("bad_key", False):
        raw_key = raw_key[:-4] + "xxxx"
    directory.api_key_principal(raw_key=raw_key)  # cached, as after the key's first request: the lean path may answer
    payload = body if options.pop("raw", False) else json.dumps(body)
    factory = RequestFactory()

    def request():
        return factory.post("/api/v1/feature-flags/evaluate", payload, content_type="application/json",
                            HTTP_AUTHORIZATION=f"ApiKey {raw_key}", **options)

    lean, drf = _answer(views.evaluate_route, request()), _answer(views._evaluate_view, request())

    assert lean == drf
    assert "theirs" not in json.dumps(lean[1]) or lean[0] == 404


def test_lean_evaluate__usage_counted_once_per_evaluation(flags, tenant, make_key, client_for):
    from flags.models import FlagEnvironment
    from flags.usage import usage_flush

    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    usage_flush()
    before = FlagEnvironment.objects.get(flag__tenant=tenant, flag__name="beta").evaluation_count

    for _ in range(3):
        assert client.post("/api/v1/feature-flags/evaluate", BODY, format="json").status_code == 200
    usage_flush()

    assert FlagEnvironment.objects.get(flag__tenant=tenant, flag__name="beta").evaluation_count == before + 3


def test_lean_evaluate__repeated_request__reused_answer_and_a_flag_change_seen_by_the_next(
        flags, tenant, make_key, client_for, django_capture_on_commit_callbacks):
    from flags.models import Flag
    from flags.services.flags import flag_update
    from tenants.models import Environment

    client = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    body = {"flag_name": "off", "environment": "production", "user_id": "user-7"}
    first = [client.post("/api/v1/feature-flags/evaluate", body, format="json").json() for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        flag_update(flag=Flag.objects.get(tenant=tenant, name="off"), environment=Environment.objects.get(slug="production"),
                    is_enabled=True, actor="test")

    after = client.post("/api/v1/feature-flags/evaluate", body, format="json").json()

    assert [a["enabled"] for a in first] == [False, False, False]
    assert first[0] == first[2]
    assert after["enabled"] is True
