"""Scheduled change requests: applied once at their time, by the beat, whatever races it."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from changes.models import ChangeRequest
from changes.services.change_requests import (
    change_request_apply,
    change_request_approve,
    change_request_cancel,
    change_request_create,
    change_request_update,
    change_requests_apply_due,
)
from core.api.principal import Principal
from core.errors import DomainError
from events.models import Event
from tenants.models import ConfigEntry
from tests import factories as make

APPROVER = Principal(kind="apikey", ident="1", label="approver", tenant_id=None, scopes=frozenset({"changes:approve"}))


def _scheduled(tenant, env, *, key="svc.limit", value=2, at=None):
    cr = change_request_create(tenant=tenant, environment=env, title="later", actor="apikey:author",
                               changes=[{"type": "config.set", "key": key, "value": value}],
                               apply_at=at or timezone.now() + timedelta(hours=1))
    return change_request_approve(change_request=cr, actor="apikey:approver", principal=APPROVER)


@pytest.mark.django_db
def test_scheduled__approved_with_apply_at__applied_by_the_beat_once_at_its_time(tenant, environments, protect, clock):
    entry = make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = _scheduled(tenant, environments["production"])
    assert cr.status == "scheduled"
    assert Event.objects.filter(resource_type="change_request", action="scheduled", key=str(cr.pk)).count() == 1

    assert change_requests_apply_due() == 0  # not yet
    clock.advance(3601)
    assert change_requests_apply_due() == 1
    assert change_requests_apply_due() == 0  # the next beat: nothing left

    entry.refresh_from_db()
    assert (entry.value, entry.version) == (2, 2)
    cr.refresh_from_db()
    assert (cr.status, cr.applied_by) == ("applied", "system:beat")


@pytest.mark.django_db
def test_rescheduled__old_time_passes__nothing_applied_until_the_new_one(tenant, environments, protect, clock):
    make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = _scheduled(tenant, environments["production"])

    moved = change_request_update(change_request=cr, actor="apikey:author", apply_at=timezone.now() + timedelta(hours=3))
    assert (moved.status, moved.reviews.count()) == ("open", 0)  # a new time is a new decision
    change_request_approve(change_request=moved, actor="apikey:approver", principal=APPROVER)
    clock.advance(3601)
    assert change_requests_apply_due() == 0
    assert ConfigEntry.objects.get(key="svc.limit").value == 1
    clock.advance(2 * 3600)
    assert change_requests_apply_due() == 1
    assert ConfigEntry.objects.get(key="svc.limit").value == 2


@pytest.mark.django_db
def test_cancelled__scheduled_request__time_removed_never_applied(tenant, environments, protect, clock):
    make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = change_request_cancel(change_request=_scheduled(tenant, environments["production"]), actor="apikey:author")

    assert (cr.status, cr.apply_at) == ("cancelled", None)
    clock.advance(7200)
    assert change_requests_apply_due() == 0
    assert ConfigEntry.objects.get(key="svc.limit").value == 1


@pytest.mark.django_db
def test_scheduled__target_changed_before_its_time__conflicted_announced_nothing_applied(tenant, environments, protect, clock):
    entry = make.config(tenant, "svc.limit", 1, environment=environments["production"])
    make.config(tenant, "svc.other", 1, environment=environments["production"])
    protect(tenant)
    cr = change_request_create(tenant=tenant, environment=environments["production"], title="two", actor="apikey:author",
                               changes=[{"type": "config.set", "key": "svc.other", "value": 5},
                                        {"type": "config.set", "key": "svc.limit", "value": 2}],
                               apply_at=timezone.now() + timedelta(hours=1))
    change_request_approve(change_request=cr, actor="apikey:approver", principal=APPROVER)
    meanwhile = _scheduled(tenant, environments["production"], value=9, at=timezone.now() + timedelta(minutes=1))
    change_request_apply(change_request=meanwhile, actor="apikey:author")

    clock.advance(3601)
    assert change_requests_apply_due() == 0

    cr.refresh_from_db()
    assert (cr.status, cr.apply_at, cr.conflicts[0]["target"]) == ("conflicted", None, "config svc.limit")
    assert ConfigEntry.objects.get(key="svc.other").value == 1  # nothing half-applied
    assert ConfigEntry.objects.get(pk=entry.pk).value == 9
    assert Event.objects.filter(resource_type="change_request", action="conflicted", key=str(cr.pk), actor="system:beat").exists()


@pytest.mark.django_db
def test_schedule__in_the_past__400(tenant, environments):
    with pytest.raises(DomainError) as refused:
        change_request_create(tenant=tenant, environment=environments["production"], title="t", actor="a",
                              changes=[{"type": "config.set", "key": "k", "value": 1}],
                              apply_at=timezone.now() - timedelta(seconds=1))
    assert (refused.value.status, refused.value.code) == (400, "apply_at_in_past")


def _race(n: int, target) -> list:
    barrier, results = threading.Barrier(n), []

    def run():
        try:
            barrier.wait()
            results.append(target())
        except DomainError as exc:
            results.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_beats__same_due_request__applied_once(tenant, environments, protect):
    make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = _scheduled(tenant, environments["production"])
    ChangeRequest.objects.filter(pk=cr.pk).update(apply_at=timezone.now() - timedelta(seconds=1))  # its time has come

    results = _race(4, change_requests_apply_due)

    assert sorted(results) == [0, 0, 0, 1]
    assert ConfigEntry.objects.get(key="svc.limit").version == 2
    assert Event.objects.filter(resource_type="config", key="svc.limit", action="updated").count() == 1
    assert Event.objects.filter(resource_type="change_request", action="applied").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_appliers__same_approved_request__applied_once_other_gets_409(tenant, environments, protect):
    make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = change_request_create(tenant=tenant, environment=environments["production"], title="now", actor="apikey:author",
                               changes=[{"type": "config.set", "key": "svc.limit", "value": 2}])
    change_request_approve(change_request=cr, actor="apikey:approver", principal=APPROVER)

    results = _race(2, lambda: change_request_apply(change_request=cr, actor="apikey:author").status)

    assert sorted(results) == ["already_applied", "applied"]
    assert ConfigEntry.objects.get(key="svc.limit").version == 2


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_real_worker__due_request_sent_to_it_four_times__applied_once(tenant, environments, protect, celery_worker_process):
    from config_hub.celery import app
    from tests.waiting import wait_until_worker_idle

    make.config(tenant, "svc.limit", 1, environment=environments["production"])
    protect(tenant)
    cr = _scheduled(tenant, environments["production"])
    ChangeRequest.objects.filter(pk=cr.pk).update(apply_at=timezone.now() - timedelta(seconds=1))

    for _ in range(4):
        app.send_task("changes.apply_due")
    assert wait_until_worker_idle()

    cr.refresh_from_db()
    assert (cr.status, cr.applied_by) == ("applied", "system:beat")
    assert ConfigEntry.objects.get(key="svc.limit").version == 2
    assert Event.objects.filter(resource_type="change_request", action="applied").count() == 1


@pytest.mark.django_db
def test_apply__crash_after_some_changes_written__nothing_applied_request_still_approved(tenant, environments, protect):
    from changes.signals import change_request_applied

    make.config(tenant, "svc.a", 1, environment=environments["production"])
    make.config(tenant, "svc.b", 1, environment=environments["production"])
    protect(tenant)
    cr = change_request_create(tenant=tenant, environment=environments["production"], title="two", actor="apikey:author",
                               changes=[{"type": "config.set", "key": "svc.a", "value": 2},
                                        {"type": "config.set", "key": "svc.b", "value": 2}])
    change_request_approve(change_request=cr, actor="apikey:approver", principal=APPROVER)

    def crash(**kwargs):  # every change is written when this runs: the process dies here
        raise RuntimeError("worker died")

    change_request_applied.connect(crash)
    try:
        with pytest.raises(RuntimeError):
            change_request_apply(change_request=cr, actor="apikey:author")
    finally:
        change_request_applied.disconnect(crash)

    assert list(ConfigEntry.objects.filter(key__in=["svc.a", "svc.b"]).values_list("value", flat=True)) == [1, 1]
    cr.refresh_from_db()
    assert cr.status == "approved"
    assert not Event.objects.filter(resource_type="config", action="updated").exists()
    assert change_request_apply(change_request=cr, actor="apikey:author").status == "applied"
