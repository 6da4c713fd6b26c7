"""A flag's history per environment (flags.history) and its revert (flag_revert),
through the service and the admin: reverting to a version restores exactly the
states every environment had then."""
from __future__ import annotations

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


@pytest.fixture
def rolled_out(tenant, environments):
    """v1: off in production; v2: on at 50% in production; v3: on in staging too."""
    from flags.services.flags import flag_update

    flag = make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=False)
    flag_update(flag=flag, environment=environments["production"], is_enabled=True, rollout_percentage=50, actor="user:ann")
    flag_update(flag=flag, environment=environments["staging"], is_enabled=True, actor="user:bob")
    flag.refresh_from_db()
    return flag


def _states(flag):
    from flags.models import FlagEnvironment

    return {fe.environment.slug: (fe.enabled, fe.strategies)
            for fe in FlagEnvironment.objects.filter(flag=flag).select_related("environment")}


def test_flag_versions__each_version__what_changed_per_environment(rolled_out):
    from flags.history import flag_versions

    versions = flag_versions(flag_id=rolled_out.pk)

    assert [v.version for v in versions] == [1, 2, 3]
    assert [(c["field"], c["old"], c["new"]) for c in versions[0].changes] == [
        ("kind", "—", '"boolean"'), ("production: enabled", "—", "false"), ("production: rollout", "—", "100%"),
        ("production: strategies", "—", "[]")]
    v2 = [(c["field"], c["old"], c["new"]) for c in versions[1].changes]
    assert v2[:2] == [("production: enabled", "false", "true"), ("production: rollout", "100%", "50%")]
    assert v2[2][0] == "production: strategies" and '"rollout": "50"' in v2[2][2]
    assert [(c["field"], c["old"], c["new"]) for c in versions[2].changes] == [
        ("staging: enabled", "—", "true"), ("staging: rollout", "—", "100%"), ("staging: strategies", "—", "[]")]
    assert versions[1].actor == "user:ann"


def test_flag_revert__to_version_1__production_off_again_and_staging_switched_off(rolled_out, environments,
                                                                                    django_capture_on_commit_callbacks):
    from events.models import Event
    from flags.history import flag_versions
    from flags.selectors import flag_evaluate
    from flags.services.flags import flag_revert

    v1 = flag_versions(flag_id=rolled_out.pk)[0]
    with django_capture_on_commit_callbacks(execute=True):
        flag_revert(flag=rolled_out, history_id=v1.history_id, actor="user:carol")

    assert _states(rolled_out) == {"production": (False, []), "staging": (False, [])}
    assert flag_evaluate(tenant=rolled_out.tenant, environment="production", name="new_checkout",
                         context={"userId": "u-1"}).enabled is False
    latest = flag_versions(flag_id=rolled_out.pk)[-1]
    assert (latest.version, latest.reason, latest.actor) == (4, "revert to version 1", "user:carol")
    assert latest.states == v1.states | {environments["staging"].pk: {"enabled": False, "strategies": []}}
    events = Event.objects.filter(key="new_checkout", data__reverted_to=1).order_by("environment")
    assert [(e.environment, e.data["enabled"]) for e in events] == [("production", False), ("staging", False)]


def test_flag_revert__to_version_2__restores_the_rollout_exactly(rolled_out):
    from flags.history import flag_versions
    from flags.services.flags import flag_revert, flag_update

    v2 = flag_versions(flag_id=rolled_out.pk)[1]
    flag_update(flag=rolled_out, is_enabled=False, actor="user:ann")

    flag_revert(flag=rolled_out, history_id=v2.history_id, actor="user:carol")

    prod = _states(rolled_out)["production"]
    assert prod[0] is True and prod[1][0]["parameters"]["rollout"] == "50"
    assert _states(rolled_out)["staging"] == (False, [])


def test_flag_revert__unknown_history_id__not_found_nothing_written(rolled_out):
    from core.errors import NotFound
    from flags.services.flags import flag_revert

    before = _states(rolled_out)
    with pytest.raises(NotFound):
        flag_revert(flag=rolled_out, history_id=999999, actor="user:carol")

    assert _states(rolled_out) == before


# --- the admin --------------------------------------------------------------------------------------


def test_admin_flag_history__changes_per_environment_and_dates_link_to_revert(rolled_out, admin_user, client):
    from flags.history import flag_versions

    client.force_login(admin_user)

    body = client.get(f"/admin/flags/flag/{rolled_out.pk}/history/").content.decode()

    assert "production: enabled:</strong> <code>false</code>&nbsp;&rarr;&nbsp;<code>true</code>" in body
    assert "production: rollout:</strong> <code>100%</code>&nbsp;&rarr;&nbsp;<code>50%</code>" in body
    for v in flag_versions(flag_id=rolled_out.pk):
        assert f'href="/admin/flags/flag/{rolled_out.pk}/history/{v.history_id}/"' in body
    assert "history_actor" not in body.lower() and "Change reason None" not in body
    assert "user:ann" in body


def test_admin_flag_revert__from_history__production_state_restored_with_reason(rolled_out, admin_user, client,
                                                                                 django_capture_on_commit_callbacks):
    from events.models import Event
    from flags.history import flag_versions

    v1 = flag_versions(flag_id=rolled_out.pk)[0]
    client.force_login(admin_user)
    url = f"/admin/flags/flag/{rolled_out.pk}/history/{v1.history_id}/"

    page = client.get(url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post(url, {"description": "", "kind": "boolean", "default_environment": rolled_out.default_environment_id,
                              "variants": "[]", "dependencies": "[]", "change_reason": "INC-42 checkout errors"})

    assert 'id="revert-states"' in page and "production" in page
    assert r.status_code == 302, r.content.decode()[:2000]
    assert _states(rolled_out) == {"production": (False, []), "staging": (False, [])}
    latest = flag_versions(flag_id=rolled_out.pk)[-1]
    assert latest.reason == "revert to version 1: INC-42 checkout errors"
    assert latest.user == admin_user.get_username()
    event = Event.objects.filter(key="new_checkout", environment="production").latest("id")
    assert event.data["reverted_to"] == 1 and event.data["reason"] == "INC-42 checkout errors"
