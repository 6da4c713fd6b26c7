"""The admin: a refused edit becomes a draft change request; reviewing and applying from the request's page."""
from __future__ import annotations

import json

import pytest

from changes.models import ChangeRequest
from tenants.models import ConfigEntry
from tests import factories as make

pytestmark = pytest.mark.django_db


def test_config_edit__protected__error_on_form_then_saved_as_draft_request(tenant, environments, protect, admin_user, client):
    entry = make.secret(tenant, "db.password", "pw-1", environment=environments["production"])
    protect(tenant)
    client.force_login(admin_user)
    form = {"is_secret": "on", "value": '"pw-2"', "description": ""}

    refused = client.post(f"/admin/tenants/configentry/{entry.pk}/change/", form)

    assert refused.status_code == 200
    assert refused.context["adminform"].form.non_field_errors().as_data()[0].code == "change_request_required"
    assert 'name="_as_change_request"' in refused.content.decode()
    assert ConfigEntry.objects.get(pk=entry.pk).secret_value == "pw-1"

    drafted = client.post(f"/admin/tenants/configentry/{entry.pk}/change/", {**form, "_as_change_request": "1"})

    cr = ChangeRequest.objects.get()
    assert drafted.status_code == 302 and drafted["Location"] == f"/admin/changes/changerequest/{cr.pk}/change/"
    assert (cr.status, cr.environment.slug, cr.author) == ("draft", "production", "user:root")
    assert cr.changes == [{"type": "config.set", "key": "db.password", "service_name": "", "value": None, "is_secret": True}]
    assert cr.secret_values == {"0": "pw-2"}
    page = client.get(drafted["Location"]).content.decode()
    assert "pw-2" not in page and "pw-1" not in page


def test_flag_state__protected__error_links_to_a_prefilled_request(tenant, environments, protect, admin_user, client):
    prod = environments["production"]
    flag = make.flag(tenant, "checkout", environment=prod, is_enabled=False)
    protect(tenant)
    client.force_login(admin_user)

    page = client.post(f"/admin/flags/flag/{flag.pk}/change/", {
        "description": "", "kind": "boolean", "default_environment": prod.pk, "variants": "[]", "dependencies": "[]",
        "states-TOTAL_FORMS": "1", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
        "states-0-id": flag.states.get().pk, "states-0-flag": flag.pk, "states-0-environment": prod.pk,
        "states-0-enabled": "on", "states-0-strategies": "[]"})

    assert page.status_code == 200
    body = page.content.decode()
    assert 'class="change-request-link"' in body
    link = body.split('class="change-request-link"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    prefilled = client.get(link)
    assert prefilled.status_code == 200
    initial = prefilled.context["adminform"].form.initial
    assert initial["changes"] == [{"type": "flag.set", "name": "checkout", "is_enabled": True, "strategies": []}]
    assert flag.states.get().enabled is False


def test_request_page__approve_by_second_operator_then_apply__value_written(tenant, environments, protect, admin_user, client,
                                                                              django_user_model):
    from django.contrib.auth.models import Permission

    entry = make.config(tenant, "billing.timeout", 5, environment=environments["production"])
    protect(tenant)
    client.force_login(admin_user)
    created = client.post("/admin/changes/changerequest/add/", {
        "tenant": tenant.pk, "environment": environments["production"].pk, "title": "longer timeout", "description": "",
        "changes": json.dumps([{"type": "config.set", "key": "billing.timeout", "value": 30}]), "apply_at_0": "", "apply_at_1": ""})
    assert created.status_code == 302, created.context["adminform"].form.errors if created.context else created
    cr = ChangeRequest.objects.get()
    own = client.post(f"/admin/changes/changerequest/{cr.pk}/change/", {"_cr_action": "approve"}, follow=True)
    assert "forbids approving one" in own.content.decode()

    reviewer = django_user_model.objects.create_user("reviewer", password="pw-reviewer-1", is_staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(codename__in=["approve_changerequest", "view_changerequest",
                                                                           "change_changerequest"]))
    client.force_login(reviewer)
    page = client.get(f"/admin/changes/changerequest/{cr.pk}/change/").content.decode()
    assert "billing.timeout" in page and "<code>5</code>" in page and "<code>30</code>" in page
    client.post(f"/admin/changes/changerequest/{cr.pk}/change/", {"_cr_action": "approve", "comment": "ok"})
    client.post(f"/admin/changes/changerequest/{cr.pk}/change/", {"_cr_action": "apply"})

    cr.refresh_from_db()
    assert cr.status == "applied" and cr.applied_by == "user:reviewer"
    assert ConfigEntry.objects.get(pk=entry.pk).value == 30
