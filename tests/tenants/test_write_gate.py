"""The write gate: one rule registered in tenants.guard refuses every write path.

The change-request protection and the operator roles plug in here; this test
registers a rule of its own and shows that each write service consults it
before changing anything.
"""
import pytest

from core.errors import Forbidden
from flags.models import Flag, Segment
from flags.services.flags import flag_create, flag_delete, flag_revert, flag_update
from flags.services.segments import segment_delete, segment_set
from tenants import guard
from tenants.models import ConfigEntry, ConfigSchema
from tenants.services.configs import config_create, config_delete, config_update
from tenants.services.schemas import schema_delete, schema_set
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def close_production():
    """Registers a rule refusing production and every all-environment write; returns what it saw."""
    seen: list[guard.Write] = []

    def rule(write: guard.Write) -> None:
        seen.append(write)
        if write.environment is None or write.environment.slug == "production":
            raise Forbidden("closed by the test's rule", code="closed")

    def close() -> list[guard.Write]:
        guard.write_check_register(rule)
        return seen

    yield close
    if rule in guard._checks:
        guard._checks.remove(rule)


def test_every_write_service_asks_the_gate_and_changes_nothing_when_refused(tenant, environments, close_production):
    prod, dev = environments["production"], environments["development"]
    entry = factories.config(tenant, "svc.timeout", 5, environment=prod)
    factories.schema("svc.limit", {"type": "integer"})
    flag = factories.flag(tenant, "beta")
    seg = factories.segment(tenant, "eu", [{"contextName": "region", "operator": "IN", "values": ["eu"]}])
    first_version = flag.history.earliest("history_date").history_id
    flag_update(flag=flag, environment=prod, is_enabled=True, actor="t")
    refused = close_production()

    attempts = [
        lambda: config_create(tenant=tenant, key="svc.new", value=1, environment=prod, actor="t"),
        lambda: config_update(entry=entry, value=6, actor="t"),
        lambda: config_delete(entry=entry, actor="t"),
        lambda: schema_set(key="svc.limit", schema={"type": "string"}, actor="t"),
        lambda: schema_delete(key="svc.limit", actor="t"),
        lambda: flag_create(tenant=tenant, name="gamma", environment=prod, is_enabled=True, actor="t"),
        lambda: flag_update(flag=flag, environment=prod, is_enabled=True, actor="t"),
        lambda: flag_update(flag=flag, variants=[], actor="t"),
        lambda: flag_revert(flag=flag, history_id=first_version, actor="t"),
        lambda: flag_delete(flag=flag, actor="t"),
        lambda: segment_set(tenant=tenant, name="us", constraints=[], actor="t"),
        lambda: segment_delete(segment=seg, actor="t"),
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            attempt()
    assert len(refused) == len(attempts)
    entry.refresh_from_db()
    assert entry.plain_value == 5 and entry.version == 1
    assert not ConfigEntry.objects.filter(key="svc.new").exists()
    assert ConfigSchema.objects.get(key="svc.limit").schema == {"type": "integer"}
    assert set(Flag.objects.filter(tenant=tenant).values_list("name", flat=True)) == {"beta"}
    assert flag.states.get(environment=prod).enabled is True  # the refused revert left production on
    assert set(Segment.objects.filter(tenant=tenant).values_list("name", flat=True)) == {"eu"}

    # What the rule lets through goes on as before, and the rule saw who and where.
    flag_update(flag=flag, environment=dev, is_enabled=True, actor="user:ann")
    last = refused[-1]
    assert (last.resource, last.action, last.key, last.environment, last.actor) == ("flag", "update", "beta", dev, "user:ann")
