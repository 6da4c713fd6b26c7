"""The release routes: create, list, read, compare; strict input, tenant isolation, scopes."""
from __future__ import annotations

import pytest

from releases.models import Release
from tests import factories as make

from .conftest import SECRET

pytestmark = pytest.mark.django_db

READ, WRITE = ["configs:read"], ["configs:read", "configs:write"]


@pytest.fixture
def writer(layered, make_key, client_for):
    return client_for(make_key(tenant=layered["tenant"], scopes=WRITE, name="writer"))


@pytest.fixture
def reader(layered, make_key, client_for):
    return client_for(make_key(tenant=layered["tenant"], scopes=READ, name="reader"))


@pytest.fixture
def revealer(layered, make_key, client_for):
    return client_for(make_key(tenant=layered["tenant"], scopes=READ + ["secrets:read"], name="revealer"))


def test_create__environment_and_name__201_with_id_digest_created_at(writer):
    r = writer.post("/api/v1/releases/", {"environment": "production", "name": "v1"}, format="json")

    assert r.status_code == 201
    release = Release.objects.get()
    assert r.json() == {"id": release.pk, "name": "v1", "environment": "production", "digest": release.digest,
                        "created_at": release.created_at.isoformat().replace("+00:00", "Z")}


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"environment": "production", "name": "v1", "extra": 1}, 400, "unknown_fields"),
    ({"environment": "nowhere", "name": "v1"}, 400, "validation_failed"),
    ({"environment": "production"}, 400, "validation_failed"),
    ({"name": "v1"}, 400, "validation_failed"),
    ({"environment": "production", "name": "a\u0000b"}, 400, "validation_failed"),
    (["production"], 400, "validation_failed"),
])
def test_create__bad_body__clear_error_nothing_written(writer, body, status, code):
    r = writer.post("/api/v1/releases/", body, format="json")

    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert not Release.objects.exists()


def test_create__name_taken__409(writer):
    assert writer.post("/api/v1/releases/", {"environment": "production", "name": "v1"}, format="json").status_code == 201

    r = writer.post("/api/v1/releases/", {"environment": "production", "name": "v1"}, format="json")

    assert r.status_code == 409
    assert Release.objects.count() == 1


def test_create__read_scope_only__403(reader):
    r = reader.post("/api/v1/releases/", {"environment": "production", "name": "v1"}, format="json")

    assert r.status_code == 403
    assert not Release.objects.exists()


def test_list__newest_first_filtered_by_environment(layered, release_of, reader):
    a = release_of(layered["tenant"], layered["production"], "a")
    b = release_of(layered["tenant"], layered["production"], "b")
    release_of(layered["tenant"], layered["staging"], "c")

    body = reader.get("/api/v1/releases/?environment=production").json()

    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [b.pk, a.pk]
    assert reader.get("/api/v1/releases/").json()["count"] == 3
    assert reader.get("/api/v1/releases/?bogus=1").status_code == 400


def test_detail__values_flags_and_schema_versions__secret_masked(layered, release_of, reader):
    release = release_of(layered["tenant"], layered["production"], "r1")

    body = reader.get(f"/api/v1/releases/{release.pk}").json()

    assert body["name"] == "r1" and body["digest"] == release.digest and body["pins"] == []
    assert body["services"] == ["billing"]
    assert body["configs"] == [
        {"key": "db.password", "is_secret": True, "value": None, "source": "tenant+environment", "masked": True},
        {"key": "db.url", "is_secret": False, "value": "postgres://prod/app", "source": "tenant+environment"},
        {"key": "log.level", "is_secret": False, "value": "warning", "source": "tenant"},
    ]
    assert body["flags"]["checkout"]["enabled"] is True
    assert body["schemas"] == {"billing.currency": 1}
    assert SECRET not in reader.get(f"/api/v1/releases/{release.pk}").content.decode()


def test_detail__service_and_secrets_read__service_view_secret_shown(layered, release_of, revealer):
    release = release_of(layered["tenant"], layered["production"], "r1")

    configs = revealer.get(f"/api/v1/releases/{release.pk}?service=billing").json()["configs"]

    assert {c["key"]: c["value"] for c in configs} == {
        "billing.currency": "EUR", "db.password": SECRET, "db.url": "postgres://prod/billing",
        "log.level": "warning", "timeout": 30}


def test_detail__another_tenants_release__404(layered, release_of, other_tenant, make_key, client_for, environments):
    theirs = release_of(other_tenant, environments["production"], "theirs")

    r = client_for(make_key(tenant=layered["tenant"], scopes=READ)).get(f"/api/v1/releases/{theirs.pk}")

    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("release_id", ["999999", "abc", "³"])
def test_detail__unknown_or_malformed_id__404(reader, release_id):
    assert reader.get(f"/api/v1/releases/{release_id}").status_code == 404


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_detail__no_update_nor_delete__405_release_unchanged(layered, release_of, writer, method):
    release = release_of(layered["tenant"], layered["production"], "r1")

    r = getattr(writer, method)(f"/api/v1/releases/{release.pk}", {"name": "x"}, format="json")

    assert r.status_code == 405
    assert Release.objects.get(pk=release.pk).name == "r1"


def test_compare__changed_added_removed_keys__differences_shape(layered, release_of, reader):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_delete, config_update

    tenant, prod = layered["tenant"], layered["production"]
    a = release_of(tenant, prod, "a")
    config_update(entry=ConfigEntry.objects.get(key="db.url", service_name=""), value="postgres://new/app", actor="t")
    config_delete(entry=ConfigEntry.objects.get(key="log.level", tenant=tenant), actor="t")
    make.config(tenant, "feature.x", True, environment=prod)
    b = release_of(tenant, prod, "b")

    body = reader.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}").json()

    assert body["differences"] == [
        {"key": "db.url", "from": {"value": "postgres://prod/app", "source": "tenant+environment"},
         "to": {"value": "postgres://new/app", "source": "tenant+environment"}},
        {"key": "feature.x", "from": {"value": None, "source": None},
         "to": {"value": True, "source": "tenant+environment"}},
        {"key": "log.level", "from": {"value": "warning", "source": "tenant"},
         "to": {"value": "info", "source": "global"}},
    ]
    assert body["flags"] == []
    # billing has its own db.url: only the other two differ for it
    billing = reader.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}?service=billing").json()["differences"]
    assert [d["key"] for d in billing] == ["feature.x", "log.level"]


def test_compare__secret_changed__masked_unless_secrets_read(layered, release_of, reader, revealer):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    a = release_of(layered["tenant"], layered["production"], "a")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="t")
    b = release_of(layered["tenant"], layered["production"], "b")

    masked = reader.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}")
    shown = revealer.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}").json()

    assert masked.json()["differences"] == [{
        "key": "db.password", "from": {"value": None, "source": "tenant+environment", "masked": True},
        "to": {"value": None, "source": "tenant+environment", "masked": True}}]
    assert SECRET not in masked.content.decode()
    assert shown["differences"][0]["from"]["value"] == SECRET
    assert shown["differences"][0]["to"]["value"] == "rotated"


def test_compare__flag_state_changed__listed_in_flags(layered, release_of, reader):
    from flags.models import Flag
    from flags.services.flags import flag_update

    a = release_of(layered["tenant"], layered["production"], "a")
    flag_update(flag=Flag.objects.get(name="banner"), environment=layered["production"], is_enabled=True, actor="t")
    b = release_of(layered["tenant"], layered["production"], "b")

    flags = reader.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}").json()["flags"]

    assert [(f["name"], f["from"]["enabled"], f["to"]["enabled"]) for f in flags] == [("banner", False, True)]


def test_compare__same_release__no_differences_and_etag(layered, release_of, reader):
    a = release_of(layered["tenant"], layered["production"], "a")

    r = reader.get(f"/api/v1/releases/{a.pk}/compare/{a.pk}")

    assert r.json() == {"differences": [], "flags": []}
    assert reader.get(f"/api/v1/releases/{a.pk}/compare/{a.pk}", HTTP_IF_NONE_MATCH=r["ETag"]).status_code == 304


def test_compare__other_side_is_another_tenants__404(layered, release_of, other_tenant, environments, reader):
    ours = release_of(layered["tenant"], layered["production"], "a")
    theirs = release_of(other_tenant, environments["production"], "b")

    assert reader.get(f"/api/v1/releases/{ours.pk}/compare/{theirs.pk}").status_code == 404
    assert reader.get(f"/api/v1/releases/{ours.pk}/compare/{ours.pk}?bogus=1").status_code == 400


def test_compare_and_rollback__1_became_true__a_difference_restored_as_1(layered, release_of, reader):
    """1 and true are different JSON values, though Python calls them equal."""
    from releases.rollback import release_rollback_changes
    from releases.snapshot import snapshot_build
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    tenant, prod = layered["tenant"], layered["production"]
    make.config(tenant, "retries", 1, environment=prod)
    a = release_of(tenant, prod, "a")
    config_update(entry=ConfigEntry.objects.get(key="retries"), value=True, actor="t")
    b = release_of(tenant, prod, "b")

    body = reader.get(f"/api/v1/releases/{a.pk}/compare/{b.pk}").json()
    changes = release_rollback_changes(a, current_state=snapshot_build(tenant=tenant, environment=prod).content)

    assert [(d["key"], d["from"]["value"], d["to"]["value"]) for d in body["differences"]] == [("retries", 1, True)]
    assert a.digest != b.digest
    assert [(c["type"], c["key"], c["value"]) for c in changes] == [("config.set", "retries", 1)]
