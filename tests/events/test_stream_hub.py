"""The stream's hub in one process (events.stream.Hub): a change wakes thousands of
listeners a slice at a time (events.waiting), and they share ONE outbox read; an
answer is never handed to a listener woken by a later commit."""
from __future__ import annotations

import asyncio

import pytest

from events import stream, waiting

pytestmark = pytest.mark.django_db(transaction=True)

LISTENERS = 3 * waiting.SLICE + 17  # several slices, the last one partial


@pytest.fixture(autouse=True)
def one_reading_thread(settings):
    settings.EVENTS_STREAM_DB_THREADS = 1
    settings.EVENTS_POLL_INTERVAL = 3600  # no wake-up but the commits' own:
    settings.REDIS_URL = ""  # (a subscription wakes its listeners when it starts, and at each message)


async def _closed(hub: stream.Hub) -> None:
    from django.db import connections

    await hub.run_sync(connections.close_all)
    hub.executor.shutdown(wait=True)


@pytest.fixture
def reads(monkeypatch):
    """The outbox reads the hub makes (each still reads the database)."""
    made = []
    real = stream._events_after

    def counted(visibility, cursor):
        made.append(cursor)
        return real(visibility, cursor)

    monkeypatch.setattr(stream, "_events_after", counted)
    return made


def _change(tenant, key: str) -> int:
    from events.models import Event
    from tenants.services.configs import config_create

    config_create(tenant=tenant, key=key, value=1, actor="t")
    return Event.objects.latest("id").pk


def _plan(tenant, after: int) -> stream.Plan:
    return stream.Plan(tenant_id=tenant.pk, all_tenants=False, tenant_filter=None, after=after)


async def _listen(hub: stream.Hub, plan: stream.Plan, cursor: int, seen: list) -> None:
    """A listener's loop as StreamBody.serve runs it: wait, read after its cursor, repeat."""
    listener = hub.admit()
    try:
        while True:
            if not listener.woken:
                await listener.wait(30)
            listener.woken = False
            batch = await hub.fetch(plan, cursor)
            if batch:
                cursor = batch[-1][0].pk
                seen.extend(event.pk for event, _frame in batch)
                return
    finally:
        hub.leave(listener)


def test_one_change__every_listener_gets_it__one_outbox_read_for_all(tenant, reads):
    cursor = _change(tenant, "before")

    async def main():
        hub = stream.Hub(asyncio.get_running_loop())
        seen: list[int] = []
        tasks = [asyncio.ensure_future(_listen(hub, _plan(tenant, cursor), cursor, seen)) for _ in range(LISTENERS)]
        await asyncio.sleep(0.05)  # all waiting
        event = await hub.run_sync(_change, tenant, "the.change")  # its commit wakes the hub
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await _closed(hub)
        return event, seen

    event, seen = asyncio.run(main())
    assert seen == [event] * LISTENERS
    assert reads == [cursor]


def test_commit_after_a_read__callers_after_its_wake_up_read_again_and_get_it(tenant, reads):
    cursor = _change(tenant, "before")

    async def main():
        hub = stream.Hub(asyncio.get_running_loop())
        plan = _plan(tenant, cursor)
        first = await hub.run_sync(_change, tenant, "first")
        await asyncio.sleep(0.05)  # its wake-up has run
        answers = [[e.pk for e, _f in await hub.fetch(plan, cursor)] for _ in range(3)]  # one read, kept
        second = await hub.run_sync(_change, tenant, "second")
        await asyncio.sleep(0.05)
        answers.append([e.pk for e, _f in await hub.fetch(plan, cursor)])
        await _closed(hub)
        return first, second, answers

    first, second, answers = asyncio.run(main())
    assert answers == [[first]] * 3 + [[first, second]]
    assert reads == [cursor, cursor]


def test_answer_not_kept_for_later_callers(tenant, reads, monkeypatch):
    cursor = _change(tenant, "before")
    monkeypatch.setattr(waiting, "ANSWER_KEPT", 0.05)

    async def main():
        hub = stream.Hub(asyncio.get_running_loop())
        plan = _plan(tenant, cursor)
        await hub.fetch(plan, cursor)
        await asyncio.sleep(0.1)
        await hub.fetch(plan, cursor)  # a later caller (a new long poll): the outbox again
        await _closed(hub)

    asyncio.run(main())
    assert reads == [cursor, cursor]
