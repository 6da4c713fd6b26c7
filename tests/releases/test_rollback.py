"""Rolling an environment back to a release: the change list (releases.rollback), and
handing it to the change requests app."""
from __future__ import annotations

import pytest

from flags.models import Flag
from flags.services.flags import flag_update
from releases.rollback import release_rollback, release_rollback_changes
from releases.snapshot import content_view, snapshot_build
from tenants.models import ConfigEntry
from tenants.services.configs import config_delete, config_update
from tests import factories as make

from .conftest import SECRET

pytestmark = pytest.mark.django_db



def _now(layered) -> dict:
    return snapshot_build(tenant=layered["tenant"], environment=layered["production"]).content


def test_rollback_changes__nothing_changed__empty(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "good")

    assert release_rollback_changes(release, current_state=_now(layered)) == []


def test_rollback_changes__environment_entries_changed_added_deleted__set_delete_set(layered, release_of):
    tenant, prod = layered["tenant"], layered["production"]
    release = release_of(tenant, prod, "good")
    config_update(entry=ConfigEntry.objects.get(key="db.url", service_name=""), value="postgres://bad/app", actor="t")
    config_delete(entry=ConfigEntry.objects.get(key="db.url", service_name="billing"), actor="t")
    make.config(tenant, "new.key", 1, environment=prod)
    make.config(tenant, "new.key", 2, environment=prod, service_name="billing")

    changes = release_rollback_changes(release, current_state=_now(layered))

    assert changes == [
        {"type": "config.delete", "key": "new.key", "service_name": ""},
        {"type": "config.delete", "key": "new.key", "service_name": "billing"},
        {"type": "config.set", "key": "db.url", "service_name": "", "value": "postgres://prod/app", "is_secret": False},
        {"type": "config.set", "key": "db.url", "service_name": "billing", "value": "postgres://prod/billing",
         "is_secret": False},
    ]


def test_rollback_changes__secret_changed__set_back_as_a_secret_with_its_value(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "good")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="t")

    changes = release_rollback_changes(release, current_state=_now(layered))

    assert changes == [{"type": "config.set", "key": "db.password", "service_name": "", "value": SECRET,
                        "is_secret": True}]


def test_rollback_changes__secret_made_plain__set_back_as_secret(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "good")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="now-plain", is_secret=False,
                  can_read_secrets=True, actor="t")

    changes = release_rollback_changes(release, current_state=_now(layered))

    assert changes == [{"type": "config.set", "key": "db.password", "service_name": "", "value": SECRET,
                        "is_secret": True}]


def test_rollback_changes__broader_scope_moved__override_in_the_environment(layered, release_of):
    tenant = layered["tenant"]
    release = release_of(tenant, layered["production"], "good")
    # tenant-wide entries (every environment) are not the environment's to write
    config_update(entry=ConfigEntry.objects.get(key="log.level", tenant=tenant), value="error", actor="t")
    config_update(entry=ConfigEntry.objects.get(key="timeout"), value=99, actor="t")

    changes = release_rollback_changes(release, current_state=_now(layered))

    assert changes == [
        {"type": "config.set", "key": "log.level", "service_name": "", "value": "warning", "is_secret": False},
        {"type": "config.set", "key": "timeout", "service_name": "billing", "value": 30, "is_secret": False},
    ]


def test_rollback_changes__applied__every_view_resolves_as_in_the_release(layered, release_of):
    """Apply the list with the config services (as a change request would) and compare."""
    from tenants.services.configs import config_set

    tenant, prod = layered["tenant"], layered["production"]
    make.instance(tenant, "search", "http://127.0.0.1:9/search")
    release = release_of(tenant, prod, "good")
    config_update(entry=ConfigEntry.objects.get(key="log.level", tenant=tenant), value="error", actor="t")
    config_delete(entry=ConfigEntry.objects.get(key="db.url", service_name=""), actor="t")
    make.config(tenant, "db.url", "postgres://x/search", environment=prod, service_name="search")
    config_update(entry=ConfigEntry.objects.get(key="timeout"), value=99, actor="t")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="rotated", actor="t")

    for change in release_rollback_changes(release, current_state=_now(layered)):
        if change["type"] == "config.set":
            config_set(tenant=tenant, environment=prod, key=change["key"], service_name=change["service_name"],
                       value=change["value"], is_secret=change["is_secret"], can_read_secrets=True, actor="t")
        else:
            config_delete(entry=ConfigEntry.objects.get(tenant=tenant, environment=prod, key=change["key"],
                                                        service_name=change["service_name"]), actor="t")

    after = _now(layered)
    for service in ("", "billing", "search"):
        want = {k: (v.get("value"), v.get("secret")) for k, v in content_view(release.content, service).items()}
        got = {k: (v.get("value"), v.get("secret")) for k, v in content_view(after, service).items()}
        assert got == want, service


def test_rollback_changes__flags__state_and_flag_wide_fields_restored_new_flag_disabled(layered, release_of):
    tenant, prod = layered["tenant"], layered["production"]
    release = release_of(tenant, prod, "good")
    flag_update(flag=Flag.objects.get(name="checkout"), environment=prod, is_enabled=False, rollout_percentage=90,
                actor="t")
    flag_update(flag=Flag.objects.get(name="banner"), kind="string", actor="t")
    make.flag(tenant, "later", environment=prod, is_enabled=True)
    make.flag(tenant, "later_off", environment=prod, is_enabled=False)

    changes = release_rollback_changes(release, current_state=_now(layered))

    checkout = release.content["flags"]["checkout"]
    assert changes == [
        {"type": "flag.set", "name": "banner", "kind": "boolean"},
        {"type": "flag.set", "name": "checkout", "is_enabled": True, "strategies": checkout["strategies"]},
        {"type": "flag.set", "name": "later", "is_enabled": False, "strategies": []},
    ]


def test_rollback_route__nothing_to_roll_back__409(layered, release_of, make_key, client_for):
    release = release_of(layered["tenant"], layered["production"], "good")
    writer = client_for(make_key(tenant=layered["tenant"], scopes=["configs:read", "configs:write"]))

    r = writer.post(f"/api/v1/releases/{release.pk}/rollback", {}, format="json")

    assert r.status_code == 409
    assert r.json()["error"]["code"] == "nothing_to_roll_back"
    assert writer.post(f"/api/v1/releases/{release.pk}/rollback", {"bogus": 1}, format="json").status_code == 400


def test_rollback__changes_app_present__one_change_request_with_the_change_list(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "good")
    config_update(entry=ConfigEntry.objects.get(key="db.url", service_name=""), value="postgres://bad/app", actor="t")
    expected = release_rollback_changes(release, current_state=_now(layered))

    change_request = release_rollback(release=release, actor="test")

    assert change_request.pk is not None
    assert change_request.tenant_id == layered["tenant"].pk
    assert change_request.environment_id == layered["production"].pk
    def targets(changes):
        return [(c["type"], c.get("key") or c.get("name"), c.get("service_name")) for c in changes]

    assert targets(change_request.changes) == targets(expected)


def test_release_after_change_request__inside_the_applying_transaction__release_named_after_it(layered):
    from django.db import transaction

    from releases.services import release_after_change_request

    with transaction.atomic():
        config_update(entry=ConfigEntry.objects.get(key="db.url", service_name=""), value="postgres://cr/app",
                      actor="t")
        release = release_after_change_request(tenant=layered["tenant"], environment=layered["production"],
                                               change_request_id=12, actor="change_request:12")

    assert release.name == "change request #12"
    assert release.content["views"][""]["db.url"]["value"] == "postgres://cr/app"
