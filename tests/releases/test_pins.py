"""Pinning a service to a release: its config reads answer from the release until unpinned."""
from __future__ import annotations

import pytest

from events.models import Event
from releases.models import Pin
from tenants.models import ConfigEntry
from tenants.services.configs import config_update
from tests import factories as make

from .conftest import SECRET

pytestmark = pytest.mark.django_db

KEY_URL = "/api/v1/config/db.url?environment=production&service_name=billing"
BUNDLE_URL = "/api/v1/config/service/billing?environment=production"


@pytest.fixture
def writer(layered, make_key, client_for):
    return client_for(make_key(tenant=layered["tenant"], scopes=["configs:read", "configs:write"], name="writer"))


@pytest.fixture
def service(layered, make_key, client_for):
    """billing's own key, cached after its first request (as in production)."""
    client = client_for(make_key(tenant=layered["tenant"], scopes=["configs:read"], name="billing"))
    assert client.get(KEY_URL).status_code == 200
    return client


def _move_on(tenant):
    """Change what billing resolves after the release was made (caches invalidated as on commit)."""
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        config_update(entry=ConfigEntry.objects.get(key="db.url", service_name="billing"),
                      value="postgres://new/billing", actor="test")
        make.config(tenant, "added.later", 1)


def test_pin__key_read_and_bundle__answer_from_the_release_until_unpinned(
    layered, release_of, writer, service, django_capture_on_commit_callbacks
):
    release = release_of(layered["tenant"], layered["production"], "good")
    _move_on(layered["tenant"])
    live_etag = service.get(KEY_URL)["ETag"]
    live_bundle = service.get(BUNDLE_URL)

    with django_capture_on_commit_callbacks(execute=True):
        r = writer.put(f"/api/v1/releases/{release.pk}/pins/billing")
    assert r.status_code == 200
    assert r.json() == {"release": release.pk, "environment": "production", "service_name": "billing"}

    pinned = service.get(KEY_URL)
    assert (pinned.json()["value"], pinned.json()["source"]) == ("postgres://prod/billing", "tenant+environment+service")
    assert pinned["ETag"] != live_etag
    bundle = service.get(BUNDLE_URL)
    assert {row["key"]: row["value"] for row in bundle.json()} == {
        "billing.currency": "EUR", "db.password": None, "db.url": "postgres://prod/billing", "log.level": "warning",
        "timeout": 30}
    assert bundle["ETag"] != live_bundle["ETag"]
    assert service.get(BUNDLE_URL, HTTP_IF_NONE_MATCH=bundle["ETag"]).status_code == 304
    assert service.get("/api/v1/config/added.later?environment=production&service_name=billing").status_code == 404
    # other services and other environments stay live
    assert service.get("/api/v1/config/added.later?environment=production&service_name=search").status_code == 200
    assert service.get("/api/v1/config/db.url?environment=staging&service_name=billing").status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        assert writer.delete(f"/api/v1/releases/{release.pk}/pins/billing").status_code == 204

    assert service.get(KEY_URL).json()["value"] == "postgres://new/billing"
    assert service.get(KEY_URL)["ETag"] == live_etag
    assert service.get(BUNDLE_URL)["ETag"] == live_bundle["ETag"]


def test_pin__secret__masked_or_revealed_as_in_live_reads(layered, release_of, writer, make_key, client_for,
                                                          django_capture_on_commit_callbacks):
    release = release_of(layered["tenant"], layered["production"], "good")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="test")
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/billing")
    url = "/api/v1/config/db.password?environment=production&service_name=billing"
    revealer = client_for(make_key(tenant=layered["tenant"], scopes=["configs:read", "secrets:read"], name="rev"))
    reader = client_for(make_key(tenant=layered["tenant"], scopes=["configs:read"], name="reader"))

    assert revealer.get(url).json()["value"] == SECRET
    assert reader.get(url).json()["value"] is None and reader.get(url).json()["masked"] is True
    rows = {r["key"]: r for r in revealer.get(BUNDLE_URL).json()}
    assert rows["db.password"]["value"] == SECRET
    assert SECRET not in reader.get(BUNDLE_URL).content.decode()


def test_pin__explain__names_the_release(layered, release_of, writer, service, django_capture_on_commit_callbacks):
    release = release_of(layered["tenant"], layered["production"], "good")
    _move_on(layered["tenant"])
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/billing")

    body = service.get(KEY_URL + "&explain=true").json()

    assert body["value"] == "postgres://prod/billing"
    assert body["explain"] == [{"source": "release", "release": {"id": release.pk, "name": "good"},
                                "resolved_from": "tenant+environment+service", "version": 1,
                                "value": "postgres://prod/billing"}]


def test_pin__service_unknown_when_released__resolved_from_the_releases_entries(
    layered, release_of, writer, make_key, client_for, django_capture_on_commit_callbacks
):
    release = release_of(layered["tenant"], layered["production"], "good")
    make.config(layered["tenant"], "log.level", "debug", environment=layered["production"], service_name="newsvc")
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/newsvc")
    client = client_for(make_key(tenant=layered["tenant"], scopes=["configs:read"]))

    body = client.get("/api/v1/config/log.level?environment=production&service_name=newsvc").json()

    assert (body["value"], body["source"]) == ("warning", "tenant")


def test_pin__events_pinned_and_unpinned__through_the_outbox(layered, release_of, writer,
                                                             django_capture_on_commit_callbacks):
    release = release_of(layered["tenant"], layered["production"], "good")

    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/billing")
        writer.delete(f"/api/v1/releases/{release.pk}/pins/billing")

    events = list(Event.objects.filter(resource_type="release").order_by("id").values_list(
        "action", "key", "environment", "service_name"))
    assert events == [("created", "good", "production", ""), ("pinned", "good", "production", "billing"),
                      ("unpinned", "good", "production", "billing")]
    assert Event.objects.get(action="pinned").data == {"id": release.pk, "name": "good", "digest": release.digest,
                                                       "previous": None}


def test_pin__again_to_another_release__replaces_the_pin(layered, release_of, writer, service,
                                                         django_capture_on_commit_callbacks):
    first = release_of(layered["tenant"], layered["production"], "first")
    _move_on(layered["tenant"])
    second = release_of(layered["tenant"], layered["production"], "second")

    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{first.pk}/pins/billing")
        writer.put(f"/api/v1/releases/{second.pk}/pins/billing")

    assert list(Pin.objects.values_list("release_id", flat=True)) == [second.pk]
    assert service.get(KEY_URL).json()["value"] == "postgres://new/billing"
    assert Event.objects.filter(action="pinned").last().data["previous"] == first.pk
    # unpinning from the release it is no longer pinned to: 404, still pinned
    assert writer.delete(f"/api/v1/releases/{first.pk}/pins/billing").status_code == 404
    assert Pin.objects.count() == 1


@pytest.mark.parametrize(("service_name", "body", "status"), [
    ("bad%20name", None, 400),
    ("billing", {"extra": 1}, 400),
])
def test_pin__bad_input__400_nothing_pinned(layered, release_of, writer, service_name, body, status):
    release = release_of(layered["tenant"], layered["production"], "good")

    r = writer.put(f"/api/v1/releases/{release.pk}/pins/{service_name}", body, format="json")

    assert r.status_code == status
    assert "error" in r.json()
    assert not Pin.objects.exists()


def test_pin__another_tenants_release__404(layered, release_of, other_tenant, environments, writer):
    theirs = release_of(other_tenant, environments["production"], "theirs")

    assert writer.put(f"/api/v1/releases/{theirs.pk}/pins/billing").status_code == 404
    assert writer.delete(f"/api/v1/releases/{theirs.pk}/pins/billing").status_code == 404
    assert not Pin.objects.exists()


def test_pin__read_scope_only__403(layered, release_of, service):
    release = release_of(layered["tenant"], layered["production"], "good")

    assert service.put(f"/api/v1/releases/{release.pk}/pins/billing").status_code == 403
    assert not Pin.objects.exists()


def test_pin__refused_by_the_write_gate__nothing_pinned(layered, release_of, writer):
    from core.errors import Conflict
    from tenants import guard

    def protect(write):
        if write.resource == "pin":
            raise Conflict("protected", code="change_request_required")

    release = release_of(layered["tenant"], layered["production"], "good")
    guard.write_check_register(protect)
    try:
        r = writer.put(f"/api/v1/releases/{release.pk}/pins/billing")
    finally:
        guard._checks.remove(protect)

    assert r.status_code == 409
    assert r.json()["error"]["code"] == "change_request_required"
    assert not Pin.objects.exists()


@pytest.mark.parametrize("url", [KEY_URL, BUNDLE_URL, "/config/tenants/acme/configs/db.url?service_name=billing"])
def test_pinned_and_live_reads__cached__no_database_query(
    layered, release_of, writer, service, django_assert_num_queries, django_capture_on_commit_callbacks, url
):
    release = release_of(layered["tenant"], layered["production"], "good")
    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/search")  # a pin exists, for another service
    assert service.get(url).status_code in (200, 404)

    with django_assert_num_queries(0):
        live = service.get(url)

    with django_capture_on_commit_callbacks(execute=True):
        writer.put(f"/api/v1/releases/{release.pk}/pins/billing")
    assert service.get(url).status_code == live.status_code

    with django_assert_num_queries(0):
        assert service.get(url).status_code == live.status_code
