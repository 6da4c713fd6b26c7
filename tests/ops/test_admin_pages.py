"""The operator's admin pages through Django's test client, logged in as a superuser:
the home page's warnings, a config entry's resolution, local JSON editor assets,
promotion, import, flag bulk actions, and the webhook delivery counter of /metrics."""
from __future__ import annotations

import json
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests import factories as make
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db


def _section(body: str, title: str) -> str:
    start = body.index(title)
    return body[start: body.index("</table>", start)]


# --- the home page ------------------------------------------------------------------------------


def test_admin_home__failing_and_disabled_webhooks_and_stale_flag__listed(tenant, environments, admin_user, client):
    from events.models import WebhookSubscription
    from flags.models import FlagEnvironment

    healthy = make.webhook(tenant, "http://127.0.0.1:9/healthy-hook")
    failing = make.webhook(tenant, "http://127.0.0.1:9/failing-hook")
    disabled = make.webhook(tenant, "http://127.0.0.1:9/disabled-hook")
    WebhookSubscription.objects.filter(pk=failing.pk).update(failing_since=timezone.now() - timedelta(hours=2))
    WebhookSubscription.objects.filter(pk=disabled.pk).update(is_active=False, disabled_at=timezone.now())
    stale = make.flag(tenant, "forgotten_flag", environment=environments["production"], is_enabled=True,
                      rollout_percentage=30)
    FlagEnvironment.objects.filter(flag=stale).update(last_evaluated_at=timezone.now() - timedelta(days=45))
    fresh = make.flag(tenant, "busy_flag", environment=environments["production"], is_enabled=True,
                      rollout_percentage=30)
    FlagEnvironment.objects.filter(flag=fresh).update(last_evaluated_at=timezone.now())
    client.force_login(admin_user)

    body = client.get("/admin/").content.decode()

    webhooks = _section(body, "Failing webhook subscriptions")
    assert healthy.url not in webhooks
    assert failing.url in webhooks and "failing since" in webhooks
    assert disabled.url in webhooks and "disabled" in webhooks
    flags = _section(body, "Flags that look stale")
    assert "forgotten_flag" in flags and "last evaluated" in flags
    assert "busy_flag" not in flags


def _home_data(tenant, environments):
    """Something for each panel of the home page to list; returns each panel's title."""
    from django.db.models import F

    from events.models import WebhookSubscription
    from flags.models import FlagEnvironment
    from registry.models import Instance

    instance = make.instance(tenant, "billing", "http://10.9.8.7:8080")
    Instance.objects.filter(pk=instance.pk).update(status="unhealthy", last_heartbeat=F("last_heartbeat"))
    hook = make.webhook(tenant, "http://127.0.0.1:9/failing-hook")
    WebhookSubscription.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(hours=2))
    stale = make.flag(tenant, "forgotten_flag", environment=environments["production"], is_enabled=True,
                      rollout_percentage=30)
    FlagEnvironment.objects.filter(flag=stale).update(last_evaluated_at=timezone.now() - timedelta(days=45))
    return {"tenants": "<h2>Tenants</h2>", "instances": "Unhealthy instances (1)",
            "webhooks": "Failing webhook subscriptions", "flags": "Flags that look stale", "events": "Latest changes",
            "config_pages": 'id="compare-link"'}


def _staff(django_user_model, *codenames):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("operator", password="pw-staff-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


@pytest.mark.parametrize("codenames, shown", [
    ((), set()),
    (("view_tenant",), {"tenants"}),
    (("view_instance",), {"instances"}),
    (("view_webhooksubscription",), {"webhooks"}),
    (("view_flag",), {"flags"}),
    (("view_event",), {"events"}),
    (("change_configentry",), {"config_pages"}),
])
def test_admin_home__staff_user__only_the_panels_of_their_view_permissions(codenames, shown, tenant, environments,
                                                                           client, django_user_model):
    panels = _home_data(tenant, environments)
    client.force_login(_staff(django_user_model, *codenames))

    response = client.get("/admin/")

    assert response.status_code == 200
    body = response.content.decode()
    assert {name for name, text in panels.items() if text in body} == shown
    if not shown:  # no tenant, instance URL, webhook or event of anyone
        assert all(text not in body for text in (tenant.slug, "10.9.8.7", "failing-hook", "forgotten_flag"))


def test_admin_home__superuser__every_panel(tenant, environments, admin_user, client):
    panels = _home_data(tenant, environments)
    client.force_login(admin_user)

    body = client.get("/admin/").content.decode()

    assert {name for name, text in panels.items() if text in body} == set(panels)


def test_admin_home__header_links_to_the_api_docs_and_root_leads_to_the_admin(admin_user, client):
    client.force_login(admin_user)

    body = client.get("/admin/").content.decode()
    root = client.get("/")

    assert "View site" not in body
    assert '<a href="/docs" id="api-docs-link">API docs</a>' in body
    assert (root.status_code, root["Location"]) == (302, "/admin/")


def test_docs__no_login__a_page_linking_to_the_login_and_back(client):
    from django.test import Client

    docs, redoc = client.get("/docs"), Client().get("/redoc")
    script = client.get("/docs?script=")

    assert docs.status_code == 401 and docs["Content-Type"].startswith("text/html")
    assert 'id="login-link" href="/admin/login/?next=/docs"' in docs.content.decode()
    assert 'href="/admin/login/?next=/redoc"' in redoc.content.decode()
    assert script.status_code == 401 and b"login-link" not in script.content  # a script, not a page


def test_redoc__operator_session__no_fonts_from_other_sites(client, admin_user):
    client.force_login(admin_user)

    html = client.get("/redoc").content.decode()

    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html
    assert "/static/drf_spectacular_sidecar/redoc/" in html


def test_admin_home__login_lockouts__in_their_own_section_not_among_the_apps(admin_user, client):
    client.force_login(admin_user)

    body = client.get("/admin/").content.decode()

    apps, security = body[:body.index('id="security-section"')], body[body.index('id="security-section"'):]
    assert "Access attempts" not in apps and "Access attempts" in security
    assert "Config entries" in apps


def test_admin_home__latest_changes__each_row_links_to_its_object(tenant, environments, admin_user, client):
    entry = make.config(tenant, "mail.from", "a@example.com")
    flag = make.flag(tenant, "beta_banner", environment=environments["production"])
    client.force_login(admin_user)

    body = client.get("/admin/").content.decode()

    latest = _section(body, "Latest changes")
    assert f'href="/admin/tenants/configentry/{entry.pk}/change/">config.created mail.from' in latest
    assert f'href="/admin/flags/flag/{flag.pk}/change/">flag.created beta_banner' in latest
    assert latest.index("beta_banner") < latest.index("mail.from")  # newest first


def test_event_list__newest_first_with_environment_and_service_filters(tenant, environments, admin_user, client):
    make.config(tenant, "first.key", 1, environment=environments["staging"], service_name="billing")
    make.config(tenant, "second.key", 2, environment=environments["production"])
    client.force_login(admin_user)

    everything = client.get("/admin/events/event/").content.decode()
    billing = client.get("/admin/events/event/?service_name=billing").content.decode()

    assert everything.index("second.key") < everything.index("first.key")
    assert "first.key" in billing and "second.key" not in billing
    assert "?environment=staging" in everything and "?service_name=billing" in everything


def test_webhook_list__two_subscriptions_to_one_url__told_apart_by_their_filter(tenant, admin_user, client):
    make.webhook(tenant, "http://127.0.0.1:9/hook", resource_types=["config"], environment="production")
    make.webhook(tenant, "http://127.0.0.1:9/hook", resource_types=["flag"], key_prefix="checkout.")
    client.force_login(admin_user)

    body = client.get("/admin/events/webhooksubscription/").content.decode()

    assert "config · env production" in body and "flag · keys checkout.*" in body
    assert f"({tenant.pk})" not in body


def test_history_page__human_column_names_json_values_and_reason(tenant, admin_user, client):
    from core.audit import change_reason
    from tenants.services.configs import config_update

    entry = make.config(tenant, "limits", {"rows": 10, "strict": False})
    with change_reason("OPS-9 more rows"):
        config_update(entry=entry, value={"rows": 20, "strict": True}, actor="user:ann")
    client.force_login(admin_user)

    body = client.get(f"/admin/tenants/configentry/{entry.pk}/history/").content.decode()

    assert "history_actor" not in body.lower() and "Change reason" not in body and "None" not in body
    assert "&quot;strict&quot;: true" in body and "True" not in body
    assert "OPS-9 more rows" in body and "user:ann" in body
    record = entry.history.latest("history_id")
    assert f'href="/admin/tenants/configentry/{entry.pk}/history/{record.history_id}/"' in body


def test_change_form__reason_field__kept_in_history_and_event(tenant, admin_user, client):
    from events.models import Event

    entry = make.config(tenant, "pool.size", 5)
    client.force_login(admin_user)

    r = client.post(f"/admin/tenants/configentry/{entry.pk}/change/", {
        "tenant": tenant.pk, "key": "pool.size", "value": "8", "description": "", "change_reason": "INC-12 pool exhausted"})

    assert r.status_code == 302, r.content.decode()[:3000]
    assert entry.history.latest("history_id").history_change_reason == "INC-12 pool exhausted"
    assert Event.objects.filter(key="pool.size").latest("id").data["reason"] == "INC-12 pool exhausted"


@pytest.mark.parametrize("url", ["/admin/tenants/tenant/add/", "/admin/tenants/environment/add/", "/admin/tenants/configentry/add/",
                                 "/admin/tenants/configschema/add/", "/admin/tenants/apikey/add/", "/admin/flags/flag/add/",
                                 "/admin/flags/segment/add/", "/admin/events/webhooksubscription/add/"])
def test_edit_forms__every_one__has_a_change_reason_field(url, admin_user, client):
    client.force_login(admin_user)

    assert 'name="change_reason"' in client.get(url).content.decode()


# --- a config entry's page ----------------------------------------------------------------------


def test_config_entry_page__resolved_value_and_explain_chain(tenant, environments, admin_user, client):
    make.config(None, "mail.sender", "global@example.com")
    make.config(tenant, "mail.sender", "acme@example.com")
    entry = make.config(tenant, "mail.sender", "prod@acme.example", environment=environments["production"])
    client.force_login(admin_user)

    body = client.get(f"/admin/tenants/configentry/{entry.pk}/change/").content.decode()

    resolution = body[body.index('id="resolution"'):]
    resolved = resolution[resolution.index('id="resolved-value"'):]
    assert resolved.split("</code>")[0].endswith("&quot;prod@acme.example&quot;")
    assert "tenant+environment" in resolution.split("</p>")[0]
    chain = resolution[resolution.index('id="explain-chain"'): resolution.index("</table>")]
    rows = chain.split("<tr>")[2:]  # after the header row
    # Most specific first, every scope that holds the key.
    assert [r.split("</td><td>")[1] for r in rows] == ["tenant+environment", "tenant", "global"]
    assert "prod@acme.example" in rows[0] and "acme@example.com" in rows[1] and "global@example.com" in rows[2]


def test_config_entry_page__secret__resolution_masked_until_revealed(tenant, environments, admin_user, client):
    entry = make.config(tenant, "db.password", "s3cr3t-value-xyz", is_secret=True)
    client.force_login(admin_user)

    masked = client.get(f"/admin/tenants/configentry/{entry.pk}/change/").content.decode()
    revealed = client.get(f"/admin/tenants/configentry/{entry.pk}/change/?reveal=1").content.decode()

    assert 'id="resolution"' in masked and "s3cr3t-value-xyz" not in masked
    assert "s3cr3t-value-xyz" in revealed[revealed.index('id="resolution"'):]


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and a.get("href") and "stylesheet" in (a.get("rel") or ""):
            self.urls.append(a["href"])


@pytest.mark.parametrize("page", ["change", "add"])
def test_config_entry_page__json_editor_and_every_asset_served_from_this_site(page, tenant, admin_user, client):
    entry = make.config(tenant, "ui.layout", {"columns": 3})
    client.force_login(admin_user)
    url = f"/admin/tenants/configentry/{entry.pk}/change/" if page == "change" else "/admin/tenants/configentry/add/"

    parser = _Assets()
    parser.feed(client.get(url).content.decode())

    assert any(u.endswith("config_hub/json-editor.js") for u in parser.urls), parser.urls
    foreign = [u for u in parser.urls if urlsplit(u).scheme or urlsplit(u).netloc]
    assert foreign == [], f"assets from outside the site: {foreign}"


# --- compare and promote ------------------------------------------------------------------------


def test_promote__staging_to_production__written_history_with_admin_and_event(
    tenant, environments, admin_user, client, make_key, client_for, django_capture_on_commit_callbacks
):
    from tenants.models import ConfigEntry

    make.config(tenant, "ui.theme", {"mode": "dark"}, environment=environments["staging"])
    make.config(tenant, "ui.other", 1, environment=environments["staging"])
    client.force_login(admin_user)
    query = f"?tenant={tenant.pk}&source={environments['staging'].pk}&target={environments['production'].pk}"

    preview = client.post("/admin/compare/" + query, {"keys": ["ui.theme"]})
    assert not ConfigEntry.objects.filter(key="ui.theme", environment=environments["production"]).exists()
    with django_capture_on_commit_callbacks() as callbacks:
        r = client.post("/admin/compare/" + query, {"keys": ["ui.theme"], "confirm": "1"})

    assert preview.status_code == 200 and "ui.theme" in preview.content.decode()
    assert r.status_code == 302
    entry = ConfigEntry.objects.get(tenant=tenant, key="ui.theme", environment=environments["production"])
    assert entry.value == {"mode": "dark"}
    assert not ConfigEntry.objects.filter(key="ui.other", environment=environments["production"]).exists()
    record = entry.history.latest("history_id")
    assert record.history_actor == "user:root" and record.history_user_id == admin_user.pk
    assert callbacks, "the event is announced after commit"
    events = client_for(make_key(tenant=tenant, scopes=["events:read"])).get("/api/v1/events/").json()
    items = events["results"] if isinstance(events, dict) and "results" in events else events.get("events", events)
    promoted = [e["data"] for e in items if e["data"]["key"] == "ui.theme" and e["data"]["environment"] == "production"]
    assert len(promoted) == 1, items
    assert promoted[0]["actor"] == "user:root" and promoted[0]["tenant"] == "acme"


# --- import ---------------------------------------------------------------------------------------


def _upload(doc) -> SimpleUploadedFile:
    return SimpleUploadedFile("acme.json", json.dumps(doc).encode(), content_type="application/json")


def test_admin_import__json_document__configs_and_flags_created(tenant, environments, admin_user, client):
    from flags.models import Flag, FlagEnvironment
    from tenants.models import ConfigEntry

    doc = {"format": "config-hub", "version": 1, "configs": [
        {"key": "imp.limit", "value": 5},
        {"key": "imp.banner", "value": {"text": "hi"}, "environment": "staging"},
    ], "flags": [{"name": "imp_flag", "environments": {
        "production": {"enabled": True, "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": "25"}}]}}}]}
    client.force_login(admin_user)

    r = client.post("/admin/transfer/", {"tenant": tenant.pk, "file": _upload(doc)})

    assert r.status_code == 302
    assert ConfigEntry.objects.get(tenant=tenant, key="imp.limit", environment__isnull=True).value == 5
    assert ConfigEntry.objects.get(tenant=tenant, key="imp.banner", environment=environments["staging"]).value == {"text": "hi"}
    state = FlagEnvironment.objects.get(flag=Flag.objects.get(tenant=tenant, name="imp_flag"), environment=environments["production"])
    assert state.enabled is True and state.rollout_percentage == 25.0


def test_admin_import__one_bad_flag__nothing_written_error_on_the_page(tenant, environments, admin_user, client):
    from events.models import Event
    from flags.models import Flag
    from tenants.models import ConfigEntry

    doc = {"format": "config-hub", "version": 1, "configs": [{"key": "imp.ok", "value": 1}],
           "flags": [{"name": "good_flag", "environments": {"production": {"enabled": True, "strategies": []}}},
                     {"name": "bad_flag", "environments": {"production": {"enabled": True, "strategies": [
                         {"name": "default", "constraints": [{"contextName": "plan", "operator": "MAYBE"}]}]}}}]}
    client.force_login(admin_user)
    events_before = Event.objects.count()

    r = client.post("/admin/transfer/", {"tenant": tenant.pk, "file": _upload(doc)})

    assert r.status_code == 200
    errors = " ".join(r.context["import_form"].errors["file"])
    assert "bad_flag" in errors and "nothing was imported" in errors
    assert not ConfigEntry.objects.filter(key="imp.ok").exists()
    assert not Flag.objects.filter(name__in=["good_flag", "bad_flag"]).exists()
    assert Event.objects.count() == events_before


# --- flag bulk actions ------------------------------------------------------------------------------


def test_flag_bulk_enable_and_disable__change_the_environment_state(tenant, environments, admin_user, client,
                                                                    django_capture_on_commit_callbacks):
    from flags.models import FlagEnvironment

    prod, staging = environments["production"], environments["staging"]
    a = make.flag(tenant, "bulk_a", environment=prod, is_enabled=False)
    b = make.flag(tenant, "bulk_b", environment=prod, is_enabled=False)
    untouched = make.flag(tenant, "bulk_c", environment=prod, is_enabled=False)
    client.force_login(admin_user)

    def act(action, env):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/admin/flags/flag/", {"action": action, "_selected_action": [a.pk, b.pk],
                                                      "environment": env.pk, "apply": "1"})

    form_page = client.post("/admin/flags/flag/", {"action": "bulk_enable", "_selected_action": [a.pk, b.pk]})
    nothing_yet = not FlagEnvironment.objects.filter(enabled=True).exists()
    enabled = act("bulk_enable", prod)
    state = {fe.flag.name: fe.enabled for fe in FlagEnvironment.objects.filter(environment=prod).select_related("flag")}
    enabled_staging = act("bulk_enable", staging)
    disabled = act("bulk_disable", prod)

    assert form_page.status_code == 200 and nothing_yet  # the action asks for the environment first
    assert enabled.status_code == 302 and enabled_staging.status_code == 302 and disabled.status_code == 302
    assert state == {"bulk_a": True, "bulk_b": True, "bulk_c": False}
    after = {(fe.flag.name, fe.environment.slug): fe.enabled
             for fe in FlagEnvironment.objects.select_related("flag", "environment")}
    assert after == {("bulk_a", "production"): False, ("bulk_b", "production"): False, ("bulk_c", "production"): False,
                     ("bulk_a", "staging"): True, ("bulk_b", "staging"): True}
    assert untouched.states.get().version == 1


# --- /metrics: webhook deliveries by outcome --------------------------------------------------------


def _deliveries(client) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        for sample in family.samples:
            if sample.name == "confighub_webhook_deliveries_total":
                out[sample.labels["outcome"]] = sample.value
    return out


def test_metrics__webhook_deliveries_counter__moves_by_outcome(tenant, client):
    from events.dispatch import delivery_attempt, event_dispatch
    from events.models import Event, WebhookDelivery

    with Receiver(fail_first=1) as receiver:
        make.webhook(tenant, receiver.url, resource_types=["config"])
        make.config(tenant, "metrics.key", 1)
        event = Event.objects.get(resource_type="config", key="metrics.key")
        assert event_dispatch(event_id=event.pk).created == 1
        delivery = WebhookDelivery.objects.get(event=event)
        before = _deliveries(client)

        first = delivery_attempt(delivery_id=delivery.pk).outcome
        after_failure = _deliveries(client)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        second = delivery_attempt(delivery_id=delivery.pk).outcome
        after_success = _deliveries(client)

    assert (first, second) == ("retrying", "succeeded")
    assert len(receiver.requests) == 2
    assert after_failure.get("failure", 0) == before.get("failure", 0) + 1
    assert after_failure.get("success", 0) == before.get("success", 0)
    assert after_success.get("success", 0) == before.get("success", 0) + 1
    assert after_success.get("failure", 0) == after_failure.get("failure", 0)


def test_event_admin__audit_trail_cannot_be_deleted_even_by_a_superuser(tenant, admin_user, client):
    from events.models import Event

    make.config(tenant, "audited", 1)
    event = Event.objects.filter(key="audited").first()
    client.force_login(admin_user)

    page = client.get(f"/admin/events/event/{event.pk}/delete/")
    bulk = client.post("/admin/events/event/", {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})

    assert page.status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()
    assert bulk.status_code == 200  # the changelist again: the action is not offered
    assert Event.objects.filter(pk=event.pk).exists()
