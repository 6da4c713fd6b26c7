"""OFREP push (OpenFeature ADR-0008) against a live hub (uvicorn, the Procfile's application):
the bulk answer's ``eventStreams``, and the stream's ``refetchEvaluation`` events read by a
plain SSE client, as an OFREP provider that supports them would."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import httpx
import pytest

from tests import factories as make
from tests.conftest import ensure_builtin_rows
from tests.events.test_stream import Listener
from tests.hub_servers import server_env, uvicorn_hub
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def hub(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        env = server_env(EVENTS_STREAM_MAX_PER_PROCESS="10")
    with uvicorn_hub(tmp_path_factory.mktemp("ofrep-push") / "uvicorn.log", env) as base:
        yield base


def _tenant(name: str):
    ensure_builtin_rows()
    return make.tenant(f"{name}-{os.getpid()}-{os.urandom(3).hex()}")  # a slug no earlier test used (server caches)


def _sse(url: str, **headers: str) -> Listener:
    """A plain SSE client on ``url`` (no credentials but the URL's, as a browser's EventSource)."""
    listener = Listener("", "")
    listener.url = url
    listener.headers = {"Accept": "text/event-stream", **headers}
    return listener


BULK = "/ofrep/v1/evaluate/flags"
CONTEXT = {"context": {"targetingKey": "user-1", "email": "someone@example.com"}}


def test_ofrep_push__a_change_in_the_environment__one_refetch_event_with_the_new_etag(hub, make_key, environments):
    from events.models import Event
    from flags.services.flags import flag_update

    prod, staging = environments["production"], environments["staging"]
    tenant, other = _tenant("ofrep"), _tenant("ofrep-other")
    flag = make.flag(tenant, "checkout", environment=prod, is_enabled=False)
    flag_update(flag=flag, environment=staging, is_enabled=False, actor="t")
    key = make_key(tenant=tenant, scopes=["flags:read"])
    headers = {"Authorization": f"ApiKey {key}", "X-Environment": "production"}

    bulk = httpx.post(f"{hub}{BULK}", json=CONTEXT, headers=headers, timeout=10)
    assert bulk.status_code == 200
    (stream,) = bulk.json()["eventStreams"]
    assert stream["type"] == "sse" and stream["inactivityDelaySec"] == 120
    assert stream["url"].startswith(f"{hub}/ofrep/v1/stream?token=")
    assert "user-1" not in stream["url"] and "someone" not in stream["url"]  # the context is encrypted

    with _sse(stream["url"]) as sse:
        assert sse.status == 200 and sse.content_type.startswith("text/event-stream")
        assert wait_until(lambda: sse.cursor is not None, timeout=10)
        flag_update(flag=flag, environment=staging, is_enabled=True, actor="t")  # another environment
        make.flag(other, "checkout", environment=prod, is_enabled=True)  # another tenant
        flag_update(flag=flag, environment=prod, is_enabled=True, actor="t")  # ours, last
        ours = Event.objects.filter(tenant=tenant, resource_type="flag").latest("id")
        assert wait_until(lambda: sse.events, timeout=10)

    (event,) = sse.events  # nothing for the two changes before ours
    data = json.loads(event["data"])
    assert (event["event"], int(event["id"]), data["type"]) == ("message", ours.pk, "refetchEvaluation")
    assert data["lastModified"] == int(ours.created_at.timestamp())
    # What the provider does then: fetch again, with the event's metadata (ADR-0008's query parameters).
    refetch = httpx.post(f"{hub}{BULK}?flagConfigEtag={quote(data['etag'])}&flagConfigLastModified={data['lastModified']}",
                         json=CONTEXT, headers={**headers, "If-None-Match": bulk.headers["ETag"]}, timeout=10)
    assert refetch.status_code == 200
    assert refetch.headers["ETag"] == data["etag"] != bulk.headers["ETag"]
    assert [(f["key"], f["value"]) for f in refetch.json()["flags"]] == [("checkout", True)]


def test_ofrep_push__segment_change_and_resume_by_last_event_id__refetch(hub, make_key, environments):
    from events.models import Event

    tenant = _tenant("ofrep-seg")
    make.flag(tenant, "beta", environment=environments["production"], is_enabled=True)
    key = make_key(tenant=tenant, scopes=["flags:read"], environment=environments["production"])
    bulk = httpx.post(f"{hub}{BULK}", json=CONTEXT, headers={"Authorization": f"ApiKey {key}"}, timeout=10)
    url = bulk.json()["eventStreams"][0]["url"]
    before = Event.objects.latest("id").pk

    make.segment(tenant, "pros", [{"contextName": "plan", "operator": "IN", "values": ["pro"]}])  # no environment
    segment_event = Event.objects.filter(tenant=tenant, resource_type="segment").latest("id").pk
    with _sse(url, **{"Last-Event-ID": str(before)}) as sse:  # missed while away: replayed
        assert wait_until(lambda: sse.events, timeout=10)
    assert int(sse.events[0]["id"]) == segment_event
    assert json.loads(sse.events[0]["data"])["type"] == "refetchEvaluation"


def test_ofrep_push__token_of_a_revoked_key_or_forged__401_json_before_the_stream(hub, make_key):
    from tenants.models import ApiKey
    from tenants.services.api_keys import api_key_revoke

    tenant = _tenant("ofrep-revoked")
    key = make_key(tenant=tenant, scopes=["flags:read"], name="soon-revoked")
    bulk = httpx.post(f"{hub}{BULK}", json=CONTEXT, headers={"Authorization": f"ApiKey {key}", "X-Environment": "production"},
                      timeout=10)
    url = bulk.json()["eventStreams"][0]["url"]
    api_key_revoke(api_key=ApiKey.objects.get(tenant=tenant, name="soon-revoked"), actor="t")

    revoked = httpx.get(url, timeout=10)
    forged = httpx.get(f"{hub}/ofrep/v1/stream?token=gAAAAAforged", timeout=10)
    for answer in (revoked, forged):
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["error"]["code"]


def test_ofrep_push__the_openfeature_ofrep_provider_0_3__still_evaluates_against_the_hub(hub, make_key, environments):
    """openfeature-provider-ofrep 0.3.0 evaluates one flag at a time and knows nothing of
    eventStreams (docs/events.md): the hub that offers them serves it unchanged."""
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext

    from flags.services.flags import flag_update

    tenant = _tenant("ofrep-sdk")
    flag = make.flag(tenant, "dark-mode", environment=environments["production"], is_enabled=False)
    key = make_key(tenant=tenant, scopes=["flags:read"])
    api.set_provider(OFREPProvider(hub, headers_factory=lambda: {"Authorization": f"ApiKey {key}",
                                                                 "X-Environment": "production"}))
    try:
        client = api.get_client()
        ctx = EvaluationContext(targeting_key="user-42")
        assert client.get_boolean_value("dark-mode", True, ctx) is False
        flag_update(flag=flag, environment=environments["production"], is_enabled=True, actor="t")
        assert client.get_boolean_value("dark-mode", False, ctx) is True
    finally:
        api.clear_providers()
