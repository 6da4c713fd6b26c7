"""The admin's write paths for tenants, environments, schemas and API keys go
through the services (events, audit actor, caches), the extra admin pages check
model permissions, the home page lists stale flags, and a new API key never
travels in a cookie."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from tests import factories as make

pytestmark = pytest.mark.django_db


def cookie_texts(response) -> list[str]:
    """Every cookie of a response as whoever holds the cookie can read it: the
    messages cookie is signed and compressed, not encrypted, so it is decoded."""
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest

    texts = []
    for morsel in response.cookies.values():
        texts.append(morsel.value)
        texts.extend(str(m) for m in CookieStorage(HttpRequest())._decode(morsel.value) or [])
    return texts


def _events(resource_type, action, key=None):
    from events.models import Event

    qs = Event.objects.filter(resource_type=resource_type, action=action)
    return list(qs.filter(key=key) if key is not None else qs)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _staff(django_user_model, *codenames, username="viewer"):
    user = django_user_model.objects.create_user(username, password="pw-staff-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


# --- API keys ---------------------------------------------------------------------


def test_admin_delete_api_key__next_request_with_it_is_401(tenant, make_key, client_for, admin_user, client,
                                                           django_capture_on_commit_callbacks):
    from tenants.models import ApiKey

    make.config(tenant, "ui.theme", "light")
    raw = make_key(tenant=tenant, scopes=["configs:read"], name="doomed")
    api = client_for(raw)
    assert api.get("/api/v1/config/ui.theme").status_code == 200  # its principal is now cached
    key = ApiKey.objects.get(name="doomed")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/tenants/apikey/{key.pk}/delete/", {"post": "yes"})

    assert r.status_code == 302
    assert api.get("/api/v1/config/ui.theme").status_code == 401
    assert [e.actor for e in _events("api_key", "deleted", "doomed")] == ["user:root"]


def test_admin_bulk_delete_api_keys__each_refused_at_once(tenant, make_key, client_for, admin_user, client,
                                                          django_capture_on_commit_callbacks):
    from tenants.models import ApiKey

    raws = [make_key(tenant=tenant, scopes=["configs:read"], name=f"k{i}") for i in range(2)]
    for raw in raws:
        assert client_for(raw).get("/api/v1/config/nothing").status_code == 404  # authenticated, cached
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/tenants/apikey/", {"action": "delete_selected", "post": "yes",
                                                   "_selected_action": [k.pk for k in ApiKey.objects.all()]})

    assert r.status_code == 302
    assert [client_for(raw).get("/api/v1/config/nothing").status_code for raw in raws] == [401, 401]
    assert sorted(e.key for e in _events("api_key", "deleted")) == ["k0", "k1"]


def test_admin_add_api_key__raw_key_in_the_page_never_in_a_cookie(tenant, admin_user, client, client_for):
    from tenants.models import ApiKey

    client.force_login(admin_user)

    r = client.post("/admin/tenants/apikey/add/", {
        "name": "deployer", "tenant": tenant.pk, "environment": "", "scopes": ["configs:read"],
        "expires_at_0": "", "expires_at_1": "",
    })

    key = ApiKey.objects.get(name="deployer")
    assert not any(f"chk_{key.prefix}_" in text for text in cookie_texts(r))
    assert r.status_code == 200, r.content[:2000]
    body = r.content.decode()
    start = body.index('id="new-api-key"')
    raw = body[body.index(">", start) + 1: body.index("</code>", start)]
    assert raw.startswith(f"chk_{key.prefix}_")
    assert raw not in json.dumps(dict(client.session))
    assert "no-store" in r["Cache-Control"]
    # Shown once: the next page has no trace of it.
    assert raw not in client.get(f"/admin/tenants/apikey/{key.pk}/change/").content.decode()
    assert client_for(raw).get("/api/v1/config/nothing").status_code == 404  # it works


# --- tenants, schemas --------------------------------------------------------------


def test_admin_bulk_delete_tenant__event_with_actor_and_its_keys_refused(tenant, make_key, client_for, admin_user, client,
                                                                       django_capture_on_commit_callbacks):
    from tenants.models import Tenant

    raw = make_key(tenant=tenant, scopes=["configs:read"])
    assert client_for(raw).get("/api/v1/config/nothing").status_code == 404
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/tenants/tenant/", {"action": "delete_selected", "post": "yes", "_selected_action": [tenant.pk]})

    assert r.status_code == 302
    assert not Tenant.objects.filter(slug="acme").exists()
    assert [e.actor for e in _events("tenant", "deleted", "acme")] == ["user:root"]
    assert client_for(raw).get("/api/v1/config/nothing").status_code == 401


def test_admin_delete_builtin_tenant__refused_with_a_message_nothing_deleted(default_tenant, admin_user, client):
    from django.contrib.admin.models import DELETION, LogEntry

    from tenants.models import Tenant

    client.force_login(admin_user)

    one = client.post(f"/admin/tenants/tenant/{default_tenant.pk}/delete/", {"post": "yes"}, follow=True)
    bulk = client.post("/admin/tenants/tenant/", {"action": "delete_selected", "post": "yes",
                                                  "_selected_action": [default_tenant.pk]}, follow=True)

    assert one.status_code == 200 and bulk.status_code == 200
    assert any("'default' cannot be deleted" in m for m in _messages(one))
    assert any("'default' cannot be deleted" in m for m in _messages(bulk))
    assert Tenant.objects.filter(slug="default").exists()
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()
    assert _events("tenant", "deleted") == []


def test_admin_bulk_delete_schema__event_with_actor(admin_user, client, django_capture_on_commit_callbacks):
    from tenants.models import ConfigSchema

    schema = make.schema("limits", {"type": "object"})
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/tenants/configschema/", {"action": "delete_selected", "post": "yes",
                                                          "_selected_action": [schema.pk]})

    assert r.status_code == 302
    assert not ConfigSchema.objects.filter(key="limits").exists()
    assert [e.actor for e in _events("schema", "deleted", "limits")] == ["user:root"]


# --- environments -----------------------------------------------------------------


def test_admin_add_schema__metadata_not_an_object__form_error_nothing_saved(admin_user, client):
    from tenants.models import ConfigSchema

    client.force_login(admin_user)

    r = client.post("/admin/tenants/configschema/add/", {"key": "limits", "schema": '{"type": "object"}',
                                                         "metadata": "[1, 2]", "default_value": "null"})

    assert r.status_code == 200
    assert r.context["adminform"].form.errors == {"metadata": ["metadata must be a JSON object"]}
    assert not ConfigSchema.objects.filter(key="limits").exists()


def test_admin_add_schema__existing_value_breaks_it__listed_on_the_schema_field(tenant, admin_user, client):
    from tenants.models import ConfigSchema
    from tenants.services.configs import config_create

    entry = config_create(tenant=tenant, key="limits", value={"max": "ten"}, actor="t")
    client.force_login(admin_user)

    r = client.post("/admin/tenants/configschema/add/", {
        "key": "limits", "schema": '{"type": "object", "properties": {"max": {"type": "integer"}}}',
        "metadata": "{}", "default_value": "null"})

    assert r.status_code == 200
    assert r.context["adminform"].form.errors == {"schema": [
        "1 existing value(s) of 'limits' would break this schema",
        f"entry #{entry.pk} (tenant=acme env=* service=*) $.max: 'ten' is not of type 'integer'",
    ]}
    assert not ConfigSchema.objects.filter(key="limits").exists()


def test_admin_delete_unused_environment__deleted_with_event(environments, admin_user, client,
                                                            django_capture_on_commit_callbacks):
    from tenants.models import Environment

    qa = make.environment("qa", name="QA")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/tenants/environment/{qa.pk}/delete/", {"post": "yes"})

    assert r.status_code == 302
    assert not Environment.objects.filter(slug="qa").exists()
    assert [e.actor for e in _events("environment", "deleted", "qa")] == ["user:root"]


def test_admin_delete_environment_in_use_or_builtin__refused_with_a_message(tenant, environments, admin_user, client):
    from tenants.models import Environment

    qa = make.environment("qa", name="QA")
    make.flag(tenant, "beta", environment=qa, is_enabled=True)
    client.force_login(admin_user)

    used = client.post(f"/admin/tenants/environment/{qa.pk}/delete/", {"post": "yes"}, follow=True)
    builtin = client.post("/admin/tenants/environment/", {"action": "delete_selected", "post": "yes",
                                                          "_selected_action": [environments["staging"].pk]}, follow=True)

    assert any("'qa' is still used by 1 flag states, 1 flags (default environment)" in m for m in _messages(used)), _messages(used)
    assert any("built-in environment 'staging' cannot be deleted" in m for m in _messages(builtin)), _messages(builtin)
    assert set(Environment.objects.filter(slug__in=["qa", "staging"]).values_list("slug", flat=True)) == {"qa", "staging"}
    assert _events("environment", "deleted") == []


def test_admin_rename_environment__event_and_audit_actor(environments, admin_user, client):
    from tenants.models import Environment

    staging = environments["staging"]
    client.force_login(admin_user)

    r = client.post(f"/admin/tenants/environment/{staging.pk}/change/", {"name": "Pre-production"})

    assert r.status_code == 302
    assert Environment.objects.get(pk=staging.pk).name == "Pre-production"
    assert [e.actor for e in _events("environment", "updated", "staging")] == ["user:root"]
    assert Environment.history.filter(id=staging.pk).latest("history_id").history_actor == "user:root"


# --- config entries ------------------------------------------------------------------


@pytest.mark.parametrize("secret", [False, True])
def test_config_entry_page__view_only_staff__shown_read_only(secret, tenant, environments, client, django_user_model):
    entry = make.config(tenant, "smtp.host", "mail.example", environment=environments["production"], is_secret=secret)
    client.force_login(_staff(django_user_model, "view_configentry"))

    response = client.get(f"/admin/tenants/configentry/{entry.pk}/change/")

    assert response.status_code == 200
    assert "smtp.host" in response.content.decode()
    assert ("mail.example" in response.content.decode()) is not secret


def test_config_entry_revert__admin_history_page__reverted_through_the_service(tenant, admin_user, client,
                                                                                django_capture_on_commit_callbacks):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "retry.max", 3)
    first = entry.history.order_by("history_id").first()
    config_update(entry=ConfigEntry.objects.get(pk=entry.pk), value=9, actor="t")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/tenants/configentry/{entry.pk}/history/{first.history_id}/",
                               {"value": "3", "description": "", "is_secret": ""})

    assert response.status_code == 302
    entry.refresh_from_db()
    assert (entry.value, entry.version) == (3, 3)
    assert entry.history.order_by("-history_id").first().history_change_reason == "revert to version 1"
    assert [(e.version, e.actor) for e in _events("config", "updated", key="retry.max")] == [(2, "t"), (3, "user:root")]


def test_config_entry_secret__description_saved_with_the_mask_untouched__value_kept(tenant, client, django_user_model):
    from core.admin import MASK
    from tenants.models import ConfigEntry

    entry = make.config(tenant, "smtp.password", "hunter2", is_secret=True)
    client.force_login(_staff(django_user_model, "view_configentry", "change_configentry", username="editor"))
    page = client.get(f"/admin/tenants/configentry/{entry.pk}/change/").content.decode()
    assert MASK in page and "hunter2" not in page

    response = client.post(f"/admin/tenants/configentry/{entry.pk}/change/",
                           {"value": MASK, "description": "the relay's password", "is_secret": "on"})

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    entry = ConfigEntry.objects.get(pk=entry.pk)
    assert (entry.description, entry.secret_value, entry.is_secret, entry.version) == (
        "the relay's password", "hunter2", True, 2)


@pytest.mark.parametrize("secret", [False, True])
def test_config_entry__saved_unchanged__no_new_version_no_event(secret, tenant, admin_user, client,
                                                                django_capture_on_commit_callbacks):
    from core.admin import MASK
    from tenants.models import ConfigEntry

    entry = make.config(tenant, "database.url", "postgresql://db/users", is_secret=secret, description="the users db")
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
            "value": MASK if secret else '"postgresql://db/users"', "description": "the users db",
            "is_secret": "on" if secret else "",
        })

    assert response.status_code == 302
    assert ConfigEntry.objects.get(pk=entry.pk).version == 1
    assert _events("config", "updated", key="database.url") == []
    assert entry.history.count() == 1


# --- compare / promote, import / export: permissions ---------------------------------


def _promote_post(client, tenant, environments):
    query = f"?tenant={tenant.pk}&source={environments['staging'].pk}&target={environments['production'].pk}"
    return client.post("/admin/compare/" + query, {"keys": ["ui.theme"], "confirm": "1"})


def test_promote__view_only_staff__403_and_nothing_changes(tenant, environments, client, django_user_model):
    from tenants.models import ConfigEntry

    make.config(tenant, "ui.theme", "dark", environment=environments["staging"])
    client.force_login(_staff(django_user_model, "view_configentry"))

    seen = client.get("/admin/compare/", {"tenant": tenant.pk, "source": environments["staging"].pk,
                                          "target": environments["production"].pk})
    r = _promote_post(client, tenant, environments)

    assert seen.status_code == 200 and "ui.theme" in seen.content.decode()
    assert r.status_code == 403
    assert not ConfigEntry.objects.filter(key="ui.theme", environment=environments["production"]).exists()


def test_promote__staff_with_add_and_change__promoted(tenant, environments, client, django_user_model):
    from tenants.models import ConfigEntry

    make.config(tenant, "ui.theme", "dark", environment=environments["staging"])
    client.force_login(_staff(django_user_model, "add_configentry", "change_configentry", username="promoter"))

    r = _promote_post(client, tenant, environments)

    assert r.status_code == 302
    assert ConfigEntry.objects.get(key="ui.theme", environment=environments["production"]).value == "dark"


def test_compare__staff_without_config_permissions__403(tenant, environments, client, django_user_model):
    client.force_login(_staff(django_user_model))

    assert client.get("/admin/compare/").status_code == 403


def _import_file():
    doc = {"format": "config-hub", "version": 1, "configs": [{"key": "imported.key", "value": 1}],
           "flags": [{"name": "imported_flag", "environments": {"production": {"enabled": True, "strategies": []}}}]}
    return SimpleUploadedFile("acme.json", json.dumps(doc).encode(), content_type="application/json")


@pytest.mark.parametrize("codenames", [
    ("view_configentry",),
    ("add_configentry", "change_configentry"),  # configs but not flags: the import writes both
])
def test_admin_import__without_write_permissions__403_nothing_imported(codenames, tenant, environments, client, django_user_model):
    from flags.models import Flag
    from tenants.models import ConfigEntry

    client.force_login(_staff(django_user_model, *codenames))

    r = client.post("/admin/transfer/", {"tenant": tenant.pk, "file": _import_file()})

    assert r.status_code == 403
    assert not ConfigEntry.objects.filter(key="imported.key").exists()
    assert not Flag.objects.filter(name="imported_flag").exists()


def test_admin_import__with_config_and_flag_permissions__imported(tenant, environments, client, django_user_model):
    from flags.models import Flag
    from tenants.models import ConfigEntry

    client.force_login(_staff(django_user_model, "add_configentry", "change_configentry", "add_flag", "change_flag",
                              username="importer"))

    r = client.post("/admin/transfer/", {"tenant": tenant.pk, "file": _import_file()})

    assert r.status_code == 302
    assert ConfigEntry.objects.filter(key="imported.key", tenant=tenant).exists()
    assert Flag.objects.filter(name="imported_flag", tenant=tenant).exists()


# --- the home page's stale flags ---------------------------------------------------------


def _age_state(flag, env, *, days: int, evaluated_days_ago: int | None = 0):
    """Pretend the state was last saved ``days`` ago (row and every history record)."""
    from flags.models import FlagEnvironment

    then = timezone.now() - timedelta(days=days)
    fe = FlagEnvironment.objects.get(flag=flag, environment=env)
    evaluated = None if evaluated_days_ago is None else timezone.now() - timedelta(days=evaluated_days_ago)
    FlagEnvironment.objects.filter(pk=fe.pk).update(updated_at=then, last_evaluated_at=evaluated)
    FlagEnvironment.history.filter(id=fe.pk).update(history_date=then)
    return fe


def _stale_rows(client) -> str:
    body = client.get("/admin/").content.decode()
    start = body.index("Flags that look stale")
    return body[start: body.index("</table>", start)]


def test_admin_home__flag_at_100_percent_for_30_days__listed_as_stale(tenant, environments, admin_user, client):
    prod = environments["production"]
    old_full = make.flag(tenant, "old_full_rollout", environment=prod, is_enabled=True, rollout_percentage=100)
    _age_state(old_full, prod, days=40)
    old_default = make.flag(tenant, "old_default_strategy", environment=prod, is_enabled=True,
                            strategies=[{"name": "default", "parameters": {}, "constraints": []}])
    _age_state(old_default, prod, days=35)
    recent = make.flag(tenant, "recent_full_rollout", environment=prod, is_enabled=True, rollout_percentage=100)
    _age_state(recent, prod, days=5)
    partial = make.flag(tenant, "old_half_rollout", environment=prod, is_enabled=True, rollout_percentage=50)
    _age_state(partial, prod, days=40)
    constrained = make.flag(tenant, "old_constrained", environment=prod, is_enabled=True,
                            strategies=[{"name": "flexibleRollout", "parameters": {"rollout": "100"},
                                         "constraints": [{"contextName": "userId", "operator": "IN", "values": ["1"]}]}])
    _age_state(constrained, prod, days=40)
    client.force_login(admin_user)

    rows = _stale_rows(client)

    assert "old_full_rollout" in rows and "old_default_strategy" in rows
    assert "served to everyone for" in rows
    assert "recent_full_rollout" not in rows and "old_half_rollout" not in rows and "old_constrained" not in rows


def test_admin_home__full_rollout_resaved_recently_still_counts_a_raise_to_100_does_not(tenant, environments, admin_user, client):
    """"For 30 days" comes from the state's history: a re-save at 100% keeps the
    run going; going from 50% to 100% five days ago starts it."""
    from flags.models import FlagEnvironment
    from flags.services.flags import flag_update

    prod = environments["production"]
    kept = make.flag(tenant, "kept_at_full", environment=prod, is_enabled=True, rollout_percentage=100)
    _age_state(kept, prod, days=45)
    flag_update(flag=kept, environment=prod, is_enabled=True, actor="t")  # a no-op re-save today
    raised = make.flag(tenant, "raised_to_full", environment=prod, is_enabled=True, rollout_percentage=50)
    _age_state(raised, prod, days=45)
    flag_update(flag=raised, environment=prod, rollout_percentage=100, actor="t")
    fe = FlagEnvironment.objects.get(flag=raised, environment=prod)
    last = FlagEnvironment.history.filter(id=fe.pk).latest("history_id")
    FlagEnvironment.history.filter(history_id=last.history_id).update(history_date=timezone.now() - timedelta(days=5))
    client.force_login(admin_user)

    rows = _stale_rows(client)

    assert "kept_at_full" in rows
    assert "raised_to_full" not in rows


def test_admin_home__flag_not_evaluated_for_30_days__still_listed(tenant, environments, admin_user, client):
    prod = environments["production"]
    quiet = make.flag(tenant, "quiet_flag", environment=prod, is_enabled=True, rollout_percentage=20)
    _age_state(quiet, prod, days=3, evaluated_days_ago=31)
    client.force_login(admin_user)

    rows = _stale_rows(client)

    assert "quiet_flag" in rows and "last evaluated" in rows
