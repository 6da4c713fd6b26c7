"""The flag state editor of the admin: a form per strategy type (everyone, a gradual
rollout, specific users, with constraints) or the raw JSON for anything else, held to
the API's validation (flags.validation.flag_validate)."""
from __future__ import annotations

import re

import pytest

from tests import factories as make

pytestmark = pytest.mark.django_db


def _form(flag, env, **data):
    from flags.models import FlagEnvironment
    from flags.strategy_form import FlagEnvironmentForm

    instance = FlagEnvironment.objects.filter(flag=flag, environment=env).first() or FlagEnvironment(flag=flag, environment=env)
    base = {"environment": env.pk, "enabled": "on", "stickiness": "default", "constraints": "[]", "strategies": "[]"}
    return FlagEnvironmentForm(data={**base, **data}, instance=instance)


@pytest.mark.parametrize("data, expected", [
    ({"strategy_type": "default"}, []),
    ({"strategy_type": "default", "constraints": '[{"contextName": "region", "operator": "IN", "values": ["eu"]}]'},
     [{"name": "default", "parameters": {}, "constraints": [{"contextName": "region", "operator": "IN", "values": ["eu"]}]}]),
    ({"strategy_type": "flexibleRollout", "rollout": "25"},
     [{"name": "flexibleRollout", "constraints": [], "parameters": {"rollout": "25", "stickiness": "default", "groupId": "checkout"}}]),
    ({"strategy_type": "flexibleRollout", "rollout": "12.5", "stickiness": "sessionId", "group_id": "g1"},
     [{"name": "flexibleRollout", "constraints": [], "parameters": {"rollout": "12.5", "stickiness": "sessionId", "groupId": "g1"}}]),
    ({"strategy_type": "userWithId", "user_ids": "u-1, u-2,\nu-3"},
     [{"name": "userWithId", "constraints": [], "parameters": {"userIds": "u-1,u-2,u-3"}}]),
    ({"strategy_type": "json", "strategies": '[{"name": "default"}, {"name": "userWithId", "parameters": {"userIds": "a"}}]'},
     [{"name": "default"}, {"name": "userWithId", "parameters": {"userIds": "a"}}]),
])
def test_strategy_form__each_type__builds_the_unleash_strategies(data, expected, tenant, environments):
    flag = make.flag(tenant, "checkout")

    form = _form(flag, environments["production"], **data)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["strategies"] == expected


@pytest.mark.parametrize("data, field, message", [
    ({"strategy_type": "flexibleRollout", "rollout": "150"}, "rollout", "less than or equal to 100"),
    ({"strategy_type": "flexibleRollout"}, "rollout", "Enter the percentage"),
    ({"strategy_type": "userWithId", "user_ids": " , "}, "user_ids", "at least one user id"),
    ({"strategy_type": "default", "constraints": '[{"contextName": "plan", "operator": "MAYBE"}]'}, "__all__", "MAYBE"),
    ({"strategy_type": "json", "strategies": '[{"name": "flexibleRollout", "parameters": {"rollout": "x"}}]'},
     "strategies", "rollout"),
    ({"strategy_type": "json", "strategies": '[{"name": "default", "segments": [424242]}]'}, "strategies", "segment"),
])
def test_strategy_form__bad_input__refused_on_the_field_like_the_api(data, field, message, tenant, environments):
    flag = make.flag(tenant, "checkout")

    form = _form(flag, environments["production"], **data)

    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors


@pytest.mark.parametrize("strategies, kind", [
    ([], "default"),
    ([{"name": "flexibleRollout", "parameters": {"rollout": "50", "stickiness": "default", "groupId": "x"}, "constraints": []}],
     "flexibleRollout"),
    ([{"name": "userWithId", "parameters": {"userIds": "a,b"}}], "userWithId"),
    ([{"name": "flexibleRollout", "parameters": {"rollout": "50"}, "segments": [1]}], "json"),
    ([{"name": "default"}, {"name": "default"}], "json"),
    ([{"name": "remoteAddress", "parameters": {"IPs": "10.0.0.1"}}], "json"),
])
def test_strategy_form_type__existing_strategies__shown_in_the_form_that_can_hold_them(strategies, kind):
    from flags.strategy_form import strategy_form_type

    assert strategy_form_type(strategies) == kind


def test_flag_page__set_a_rollout_with_the_form__saved_through_the_service(tenant, environments, admin_user, client):
    from flags.models import FlagEnvironment

    flag = make.flag(tenant, "checkout", environment=environments["production"], is_enabled=True, rollout_percentage=10)
    state = FlagEnvironment.objects.get(flag=flag)
    client.force_login(admin_user)
    page = client.get(f"/admin/flags/flag/{flag.pk}/change/").content.decode()
    assert re.search(r'name="states-0-rollout"[^>]*value="10.0"|value="10.0"[^>]*name="states-0-rollout"', page), page

    r = client.post(f"/admin/flags/flag/{flag.pk}/change/", {
        "description": "", "kind": "boolean", "default_environment": environments["production"].pk,
        "variants": "[]", "dependencies": "[]", "change_reason": "ramp up",
        "states-TOTAL_FORMS": "1", "states-INITIAL_FORMS": "1", "states-MIN_NUM_FORMS": "0", "states-MAX_NUM_FORMS": "1000",
        "states-0-id": state.pk, "states-0-flag": flag.pk, "states-0-environment": environments["production"].pk,
        "states-0-enabled": "on", "states-0-strategy_type": "flexibleRollout", "states-0-rollout": "60",
        "states-0-stickiness": "default", "states-0-group_id": "", "states-0-user_ids": "", "states-0-constraints": "[]",
        "states-0-strategies": "[]",
    })

    assert r.status_code == 302, r.content.decode()[:3000]
    state.refresh_from_db()
    assert state.rollout_percentage == 60.0 and state.version == 2
    assert state.strategies[0]["parameters"] == {"rollout": "60", "stickiness": "default", "groupId": "checkout"}
    assert state.history.latest("history_id").history_change_reason == "ramp up"
    flag.refresh_from_db()
    assert flag.version == 2  # one new version: the state's change, no empty one before it
