"""A Redis restart under a running worker and beat: both survive, the outbox drains."""
from __future__ import annotations

import json
import time

import pytest

from tests.conftest import WorkerProcess
from tests.faults.conftest import BeatProcess
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _received_keys(receiver) -> set[str]:
    with receiver.lock:
        return {json.loads(r["body"])["data"]["key"] for r in receiver.requests}


def test_redis_restart__worker_and_beat__survive_and_outbox_drains(tenant, throwaway_redis, tmp_path, celery_worker_env):
    from config_hub.celery import app
    from events.services import webhook_create
    from tenants.services.configs import config_create
    from tests.receiver import Receiver

    app.control.purge()
    with Receiver() as receiver:
        webhook_create(tenant=tenant, url=receiver.url, resource_types=["config"], actor="t")
        worker = WorkerProcess(tmp_path / "worker.log", extra_env=celery_worker_env).start()
        beat = BeatProcess(tmp_path / "beat.log", worker.env, tmp_path).start()
        logs = lambda: worker.log_path.read_text()[-4000:] + "\n--- beat ---\n" + beat.log_path.read_text()[-2000:]  # noqa: E731
        try:
            config_create(tenant=tenant, key="before.outage", value=0, actor="t")
            assert wait_until(lambda: "before.outage" in _received_keys(receiver), timeout=30), logs()

            receiver.delay = 3.0  # the next delivery is running (unacknowledged) when Redis goes
            config_create(tenant=tenant, key="held.at.kill", value=0, actor="t")
            assert wait_until(lambda: receiver.pending, timeout=20), logs()
            throwaway_redis.kill()
            receiver.delay = 0.0
            for i in range(5):
                config_create(tenant=tenant, key=f"during.outage.{i}", value=i, actor="t")
            # Both notice while Redis is away: the worker's poll fails, a beat send fails.
            assert wait_until(lambda: b"Connection to broker lost" in worker.log_path.read_bytes(), timeout=30), logs()
            assert wait_until(lambda: any(m in beat.log_path.read_bytes() for m in (b"Couldn't apply scheduled task",
                                                                                  b"beat: Connection error")),
                              timeout=30), logs()
            throwaway_redis.start()
            back = time.monotonic()

            during = {f"during.outage.{i}" for i in range(5)}
            assert wait_until(lambda: during <= _received_keys(receiver), timeout=60, step=0.5), logs()
            drained_after = time.monotonic() - back
            assert worker.proc.poll() is None, logs()
            assert beat.proc.poll() is None, logs()
            assert b"Unrecoverable error" not in worker.log_path.read_bytes(), logs()
        finally:
            beat.stop()
            worker.stop()
    print(f"outbox drained {drained_after:.1f} s after Redis came back")
    assert drained_after < 60
