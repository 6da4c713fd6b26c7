"""Flags and segments in the admin go through flags.services: a delete leaves the
event with the operator as actor and evaluation forgets the flag at once; the flag
page refuses malformed strategies and constraints and saves a valid one."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


def _events(resource_type, action, key=None):
    from events.models import Event

    qs = Event.objects.filter(resource_type=resource_type, action=action)
    return list(qs.filter(key=key) if key is not None else qs)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def _evaluate(client, name):
    return client.post("/api/v1/feature-flags/evaluate", {"flag_name": name, "environment": "production",
                                                          "context": {"userId": "u1"}}, format="json")


def test_admin_delete_flag__evaluate_404_at_once_and_event_with_actor(tenant, environments, make_key, client_for, admin_user,
                                                                      client, django_capture_on_commit_callbacks):
    from flags.models import Flag

    flag = make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=True)
    api = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    assert _evaluate(api, "new_checkout").status_code == 200  # the compiled state is now cached
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/flags/flag/{flag.pk}/delete/", {"post": "yes"})

    assert r.status_code == 302
    assert not Flag.objects.filter(pk=flag.pk).exists()
    assert _evaluate(api, "new_checkout").status_code == 404
    assert [e.actor for e in _events("flag", "deleted", "new_checkout")] == ["user:root"]
    assert Flag.history.filter(id=flag.pk, history_type="-").get().history_actor == "user:root"


def test_admin_bulk_delete_flags__each_through_the_service(tenant, environments, make_key, client_for, admin_user, client,
                                                           django_capture_on_commit_callbacks):
    flags = [make.flag(tenant, f"f{i}", environment=environments["production"], is_enabled=True)
             for i in range(2)]
    api = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    assert _evaluate(api, "f0").status_code == 200
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/admin/flags/flag/", {"action": "delete_selected", "post": "yes",
                                               "_selected_action": [f.pk for f in flags]})

    assert r.status_code == 302
    assert [_evaluate(api, n).status_code for n in ("f0", "f1")] == [404, 404]
    assert sorted(e.key for e in _events("flag", "deleted")) == ["f0", "f1"]


def test_admin_delete_unused_segment__deleted_with_event(tenant, admin_user, client, django_capture_on_commit_callbacks):
    from flags.models import Segment

    seg = make.segment(tenant, "beta-testers", [])
    client.force_login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/flags/segment/{seg.pk}/delete/", {"post": "yes"})

    assert r.status_code == 302
    assert not Segment.objects.filter(pk=seg.pk).exists()
    assert [e.actor for e in _events("segment", "deleted", "beta-testers")] == ["user:root"]


def test_admin_delete_segment_a_flag_uses__refused_flag_unchanged(tenant, environments, make_key, client_for, admin_user,
                                                                   client):
    from flags.models import Segment

    seg = make.segment(tenant, "internal", [{"contextName": "userId", "operator": "IN", "values": ["u1"]}])
    make.flag(tenant, "internal_tools", environment=environments["production"], is_enabled=True,
              strategies=[{"name": "default", "parameters": {}, "constraints": [], "segments": [seg.pk]}])
    client.force_login(admin_user)

    one = client.post(f"/admin/flags/segment/{seg.pk}/delete/", {"post": "yes"}, follow=True)
    bulk = client.post("/admin/flags/segment/", {"action": "delete_selected", "post": "yes", "_selected_action": [seg.pk]},
                       follow=True)

    for r in (one, bulk):
        assert any("segment 'internal' is used by 1 flag state(s): internal_tools@production" in m for m in _messages(r)), \
            _messages(r)
    assert Segment.objects.filter(pk=seg.pk).exists()
    assert _events("segment", "deleted") == []
    api = client_for(make_key(tenant=tenant, scopes=["flags:read"]))
    assert _evaluate(api, "internal_tools").json()["enabled"] is True


def test_admin_flag_and_segment_pages__render_and_save_through_the_services(tenant, environments, admin_user, client,
                                                                            django_capture_on_commit_callbacks):
    from flags.models import Flag, Segment

    flag = make.flag(tenant, "pages", environment=environments["production"], is_enabled=False)
    client.force_login(admin_user)

    assert client.get(f"/admin/flags/flag/{flag.pk}/change/").status_code == 200
    assert client.get("/admin/flags/segment/add/").status_code == 200
    bad = client.post("/admin/flags/segment/add/", {"tenant": tenant.pk, "name": "s", "description": "",
                                                    "constraints": '[{"operator": "IN"}]'})
    with django_capture_on_commit_callbacks(execute=True):
        good = client.post("/admin/flags/segment/add/", {"tenant": tenant.pk, "name": "s", "description": "",
                                                         "constraints": "[]"})
        changed = client.post(f"/admin/flags/flag/{flag.pk}/change/", {
            "description": "now described", "kind": "boolean", "default_environment": environments["production"].pk,
            "variants": "[]", "dependencies": "[]",
            "states-TOTAL_FORMS": "2", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
            "states-0-id": flag.states.get().pk, "states-0-flag": flag.pk,
            "states-0-environment": environments["production"].pk, "states-0-enabled": "on", "states-0-strategies": "[]",
            "states-1-id": "", "states-1-flag": flag.pk,
            "states-1-environment": environments["staging"].pk, "states-1-strategies": "[]",
        })

    assert bad.status_code == 200 and bad.context["adminform"].form.errors["constraints"]
    assert good.status_code == 302 and Segment.objects.filter(tenant=tenant, name="s").exists()
    assert changed.status_code == 302, changed.context["adminform"].form.errors if changed.context else changed.content[:500]
    assert Flag.objects.get(pk=flag.pk).description == "now described"
    assert {fe.environment.slug: fe.enabled for fe in Flag.objects.get(pk=flag.pk).states.all()} == \
        {"production": True, "staging": False}


# --- the admin refuses malformed strategies and constraints ---------------------------------

def _flag_page_post(flag, environments, strategies: str, description="changed by the operator"):
    fe = flag.states.get()
    return {
        "description": description, "kind": "boolean", "default_environment": environments["production"].pk,
        "variants": "[]", "dependencies": "[]",
        "states-TOTAL_FORMS": "1", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
        "states-0-id": fe.pk, "states-0-flag": flag.pk, "states-0-environment": environments["production"].pk,
        "states-0-enabled": "on", "states-0-strategies": strategies,
    }

@pytest.mark.parametrize("strategies, message", [
    ('[{"name": "flexibleRollout", "parameters": {"rollout": "lots"}}]', "rollout"),
    ('[{"name": "default", "constraints": [{"contextName": "userId", "operator": "IS_ONE_OF", "values": ["1"]}]}]',
     "unknown operator"),
    ('[{"name": "default", "constraints": [{"operator": "IN", "values": ["1"]}]}]', "contextName"),
    ('[{"name": "default", "constraints": [{"contextName": "segment", "operator": "NOPE", "values": ["1"]}]}]',
     "unknown operator"),
    ('[{"name": "default", "segments": "vip"}]', "segments must be a list"),
    ('[{"name": "default", "segments": [987654]}]', "987654"),
    ('{"name": "default"}', "list"),
])
def test_admin_flag_page__malformed_strategy_or_constraint__form_error_nothing_saved(
    strategies, message, tenant, environments, admin_user, client
):
    from flags.models import Flag, FlagEnvironment

    flag = make.flag(tenant, "guarded", environment=environments["production"], is_enabled=True, rollout_percentage=20)
    before = FlagEnvironment.objects.get(flag=flag)
    client.force_login(admin_user)

    r = client.post(f"/admin/flags/flag/{flag.pk}/change/", _flag_page_post(flag, environments, strategies))

    assert r.status_code == 200, "the page must be shown again with the error, not saved"
    inline_errors = r.context["inline_admin_formsets"][0].formset.errors
    text = " ".join(str(e) for e in inline_errors)
    assert "strategies" in inline_errors[0] and message in text, inline_errors
    after = FlagEnvironment.objects.get(flag=flag)
    assert (after.strategies, after.version, after.enabled) == (before.strategies, before.version, before.enabled)
    assert Flag.objects.get(pk=flag.pk).description == ""

def test_admin_flag_page__strategy_naming_the_tenants_segment__saved(tenant, environments, admin_user, client,
                                                                    django_capture_on_commit_callbacks):
    from flags.models import Flag, FlagEnvironment

    seg = make.segment(tenant, "vip", [{"contextName": "plan", "operator": "IN", "values": ["pro"]}])
    flag = make.flag(tenant, "guarded", environment=environments["production"], is_enabled=True, rollout_percentage=20)
    client.force_login(admin_user)
    strategies = f'[{{"name": "default", "parameters": {{}}, "constraints": [], "segments": [{seg.pk}]}}]'

    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(f"/admin/flags/flag/{flag.pk}/change/", _flag_page_post(flag, environments, strategies))

    assert r.status_code == 302
    assert FlagEnvironment.objects.get(flag=flag).strategies[0]["segments"] == [seg.pk]
    assert Flag.objects.get(pk=flag.pk).description == "changed by the operator"
