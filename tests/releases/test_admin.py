"""The releases in the admin: made through the service, read-only, compared; pins added
and removed through the services."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from events.models import Event
from releases.models import Pin, Release
from tenants.models import ConfigEntry
from tenants.services.configs import config_update

from .conftest import SECRET

pytestmark = pytest.mark.django_db


def _staff(django_user_model, *codenames, username="viewer"):
    user = django_user_model.objects.create_user(username, password="pw-staff-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_admin_add_release__through_the_service__snapshot_and_event(layered, admin_user, client):
    client.force_login(admin_user)
    assert client.get("/admin/releases/release/add/").status_code == 200

    r = client.post("/admin/releases/release/add/", {"tenant": layered["tenant"].pk,
                                                     "environment": layered["production"].pk, "name": "by hand"})

    assert r.status_code == 302
    release = Release.objects.get()
    assert (release.name, release.created_by) == ("by hand", "user:root")
    assert release.content["views"][""]["db.url"]["value"] == "postgres://prod/app"
    assert Event.objects.get(resource_type="release", action="created").actor == "user:root"
    assert "by hand" in client.get("/admin/releases/release/").content.decode()
    assert client.get("/admin/releases/pin/").status_code == 200
    assert client.get("/admin/releases/pin/add/").status_code == 200


def test_admin_add_release__name_taken__form_error_nothing_written(layered, release_of, admin_user, client):
    release_of(layered["tenant"], layered["production"], "v1")
    client.force_login(admin_user)

    r = client.post("/admin/releases/release/add/", {"tenant": layered["tenant"].pk,
                                                     "environment": layered["production"].pk, "name": "v1"})

    assert r.status_code == 200
    assert Release.objects.count() == 1


def test_admin_release_page__read_only_secret_masked_no_delete(layered, release_of, admin_user, client):
    release = release_of(layered["tenant"], layered["production"], "v1")
    client.force_login(admin_user)

    page = client.get(f"/admin/releases/release/{release.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="release-values"' in html and "postgres://prod/app" in html
    assert SECRET not in html
    assert 'name="_save"' not in html
    assert client.post(f"/admin/releases/release/{release.pk}/change/", {"name": "x"}).status_code == 403
    assert client.post(f"/admin/releases/release/{release.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Release.objects.get(pk=release.pk).name == "v1"


def test_admin_compare__two_releases__differences_secret_masked_without_reveal(
    layered, release_of, client, django_user_model
):
    a = release_of(layered["tenant"], layered["production"], "a")
    config_update(entry=ConfigEntry.objects.get(key="db.url", service_name=""), value="postgres://new/app", actor="t")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="t")
    b = release_of(layered["tenant"], layered["production"], "b")
    client.force_login(_staff(django_user_model, "view_release"))

    html = client.get(f"/admin/releases/release/compare/?a={a.pk}&b={b.pk}").content.decode()

    assert 'id="release-diff"' in html
    assert "postgres://prod/app" in html and "postgres://new/app" in html
    assert SECRET not in html and "rotated" not in html


def test_admin_compare__with_reveal_permission__secret_values_shown(layered, release_of, client, django_user_model):
    a = release_of(layered["tenant"], layered["production"], "a")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="t")
    b = release_of(layered["tenant"], layered["production"], "b")
    client.force_login(_staff(django_user_model, "view_release", "reveal_secret"))

    html = client.get(f"/admin/releases/release/compare/?a={a.pk}&b={b.pk}&service=billing").content.decode()

    assert SECRET in html and "rotated" in html


def test_admin_compare__without_view_permission__403(layered, release_of, client, django_user_model):
    a = release_of(layered["tenant"], layered["production"], "a")
    client.force_login(_staff(django_user_model, "view_configentry"))

    assert client.get(f"/admin/releases/release/compare/?a={a.pk}&b={a.pk}").status_code == 403


def test_admin_compare_action__two_selected__redirects_to_the_compare_page(layered, release_of, admin_user, client):
    a = release_of(layered["tenant"], layered["production"], "a")
    b = release_of(layered["tenant"], layered["production"], "b")
    client.force_login(admin_user)

    r = client.post("/admin/releases/release/", {"action": "compare_selected", "_selected_action": [a.pk, b.pk]})

    assert r.status_code == 302
    assert r["Location"] == f"/admin/releases/release/compare/?a={a.pk}&b={b.pk}"


def test_admin_pin_add_and_delete__through_the_services(layered, release_of, admin_user, client,
                                                        django_capture_on_commit_callbacks):
    release = release_of(layered["tenant"], layered["production"], "v1")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/releases/pin/add/", {"release": release.pk, "service_name": "billing"})
    assert r.status_code == 302
    pin = Pin.objects.get()
    assert (pin.tenant_id, pin.environment_id, pin.service_name) == (layered["tenant"].pk, layered["production"].pk,
                                                                      "billing")

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/releases/pin/{pin.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Pin.objects.exists()
    assert list(Event.objects.filter(resource_type="release").order_by("id").values_list("action", "actor")) == [
        ("created", "test"), ("pinned", "user:root"), ("unpinned", "user:root")]


def test_admin_rollback_action__nothing_changed__message_nothing_opened(layered, release_of, admin_user, client):
    release = release_of(layered["tenant"], layered["production"], "a")
    client.force_login(admin_user)

    r = client.post("/admin/releases/release/", {"action": "rollback_to_selected", "_selected_action": [release.pk]},
                    follow=True)

    assert "No change request opened" in r.content.decode()
    assert "already resolves every value" in r.content.decode()


def test_admin_rollback_action__view_only_staff__403(layered, release_of, client, django_user_model):
    release = release_of(layered["tenant"], layered["production"], "a")
    client.force_login(_staff(django_user_model, "view_release"))

    r = client.post("/admin/releases/release/", {"action": "rollback_to_selected", "_selected_action": [release.pk]})

    assert r.status_code == 403


def test_admin_snapshot_again_action__one_new_release_per_environment(layered, release_of, admin_user, client):
    a = release_of(layered["tenant"], layered["production"], "a")
    b = release_of(layered["tenant"], layered["production"], "b")
    s = release_of(layered["tenant"], layered["staging"], "s")
    client.force_login(admin_user)

    r = client.post("/admin/releases/release/", {"action": "snapshot_again", "_selected_action": [a.pk, b.pk, s.pk]})

    assert r.status_code == 302
    made = Release.objects.exclude(pk__in=[a.pk, b.pk, s.pk])
    assert sorted(made.values_list("environment__slug", "created_by")) == [("production", "user:root"),
                                                                            ("staging", "user:root")]
    assert made.get(environment__slug="production").digest == a.digest
