"""Releases as snapshots: what they hold, their digest, secrets, immutability."""
from __future__ import annotations

import pytest
from django.db import connection

from releases.models import Release, ReleaseImmutable
from releases.snapshot import content_view, entries_resolve, snapshot_build
from tenants.selectors import config_bundle
from tests import factories as make

from .conftest import SECRET

pytestmark = pytest.mark.django_db


def test_release__layered_environment__views_hold_the_resolved_values_per_service(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "r1")

    views = release.content["views"]
    assert sorted(views) == ["", "billing"]
    assert {k: (v.get("value"), v["source"]) for k, v in views[""].items()} == {
        "db.password": (None, "tenant+environment"),
        "db.url": ("postgres://prod/app", "tenant+environment"),
        "log.level": ("warning", "tenant"),
    }
    assert {k: (v.get("value"), v["source"]) for k, v in views["billing"].items()} == {
        "billing.currency": ("EUR", "default"),
        "db.password": (None, "tenant+environment"),
        "db.url": ("postgres://prod/billing", "tenant+environment+service"),
        "log.level": ("warning", "tenant"),
        "timeout": (30, "tenant+service"),
    }
    assert release.content["flags"]["checkout"]["enabled"] is True
    assert release.content["flags"]["checkout"]["strategies"][0]["parameters"]["rollout"] == "25"
    assert release.content["flags"]["banner"] == {"enabled": False, "strategies": [], "variants": [],
                                                  "dependencies": [], "kind": "boolean"}
    assert release.content["schemas"] == {"billing.currency": {"version": 1, "default_value": "EUR"}}


def test_release__registry_service_without_entries__has_its_own_view(layered, release_of):
    make.instance(layered["tenant"], "search", "http://127.0.0.1:9/search")

    release = release_of(layered["tenant"], layered["production"], "r1")

    assert sorted(release.content["views"]) == ["", "billing", "search"]
    assert sorted(release.content["views"]["search"]) == ["db.password", "db.url", "log.level"]


def test_entries_resolve__every_view__equals_the_projects_resolution(layered):
    make.config(None, "billing.currency", "USD", environment=layered["production"], service_name="billing")
    make.config(layered["tenant"], "timeout", 10, environment=layered["production"])
    snapshot = snapshot_build(tenant=layered["tenant"], environment=layered["production"])

    for service in ("", "billing", "search"):
        live = config_bundle(tenant=layered["tenant"], environment="production", service_name=service)
        resolved = entries_resolve(snapshot.content["entries"], snapshot.content["schemas"], service)
        assert [(r["key"], r["source"], r["id"], r["version"]) for r in live] == [
            (k, v["source"], v["id"], v["version"]) for k, v in resolved.items()]
        assert content_view(snapshot.content, service) == resolved


def test_digest__equal_contents__equal_digests_across_environments_and_time(tenant, environments, release_of):
    make.config(tenant, "k", 1, environment=environments["staging"])
    entry = make.config(tenant, "k", 1, environment=environments["production"])
    staging = release_of(tenant, environments["staging"], "s")
    before = release_of(tenant, environments["production"], "p1")

    from tenants.services.configs import config_update

    config_update(entry=entry, value=2, actor="test")
    changed = release_of(tenant, environments["production"], "p2")
    config_update(entry=entry, value=1, actor="test")  # back, at version 3
    back = release_of(tenant, environments["production"], "p3")

    assert len(before.digest) == 64
    assert staging.digest == before.digest
    assert changed.digest != before.digest
    assert back.digest == before.digest


def test_digest__flag_state_change__changes_the_digest(layered, release_of):
    from flags.models import Flag
    from flags.services.flags import flag_update

    before = release_of(layered["tenant"], layered["production"], "a")
    flag_update(flag=Flag.objects.get(name="banner"), environment=layered["production"], is_enabled=True, actor="test")

    assert release_of(layered["tenant"], layered["production"], "b").digest != before.digest


def test_secret__never_plain_in_content__stored_encrypted(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "r1")

    import json

    assert SECRET not in json.dumps(release.content)
    ref = release.content["views"][""]["db.password"]["secret"]
    assert Release.objects.get(pk=release.pk).secrets == {ref: SECRET}
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets::text, content::text FROM releases_release WHERE id = %s", [release.pk])
        raw_secrets, raw_content = cursor.fetchone()
    assert SECRET not in raw_secrets and SECRET not in raw_content


def test_secret__changed_value__changes_the_digest_and_the_ref(layered, release_of):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    first = release_of(layered["tenant"], layered["production"], "a")
    config_update(entry=ConfigEntry.objects.get(key="db.password"), value="other", actor="test")
    second = release_of(layered["tenant"], layered["production"], "b")

    assert second.digest != first.digest
    assert second.content["views"][""]["db.password"]["secret"] != first.content["views"][""]["db.password"]["secret"]


def test_release__save_of_an_existing_row__refused(layered, release_of):
    release = release_of(layered["tenant"], layered["production"], "r1")
    release.name = "renamed"

    with pytest.raises(ReleaseImmutable):
        release.save()
    with pytest.raises(ReleaseImmutable):
        Release.objects.filter(pk=release.pk).update(name="renamed")
    assert Release.objects.get(pk=release.pk).name == "r1"


def test_release_create__name_taken_in_the_environment__conflict_nothing_written(layered, release_of):
    from core.errors import Conflict

    release_of(layered["tenant"], layered["production"], "r1")

    with pytest.raises(Conflict):
        release_of(layered["tenant"], layered["production"], "r1")
    assert release_of(layered["tenant"], layered["staging"], "r1").name == "r1"  # another environment: fine
    assert Release.objects.filter(name="r1").count() == 2


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201, "a\u202eb"])
def test_release_create__bad_name__refused(layered, release_of, name):
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        release_of(layered["tenant"], layered["production"], name)
    assert not Release.objects.exists()


def test_release_create__event_release_created_without_secret(layered, release_of):
    from events.models import Event

    release = release_of(layered["tenant"], layered["production"], "r1")

    event = Event.objects.get(resource_type="release", action="created")
    assert (event.tenant_id, event.key, event.environment, event.actor) == (layered["tenant"].pk, "r1", "production", "test")
    assert event.data == {"id": release.pk, "name": "r1", "digest": release.digest}


def test_fernet_rotation__release_secrets__re_encrypted_with_the_new_key_values_kept(layered, release_of, settings):
    from cryptography.fernet import Fernet

    from tenants.services.fernet import fernet_rotate

    release = release_of(layered["tenant"], layered["production"], "r1")
    old = settings.FERNET_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    fernet_rotate()
    settings.FERNET_KEYS = [new]

    assert Release.objects.get(pk=release.pk).secrets == release.secrets
    with pytest.raises(ReleaseImmutable):
        Release.objects.filter(pk=release.pk).update(secrets={"x": "other"})
