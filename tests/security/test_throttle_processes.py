"""The throttle's limit holds across processes although each admits from memory.

Every process holds a lease on a caller's shared counter (core/api/throttling.py):
it admits from memory what it claimed from Redis, in blocks. Two real processes
drive the same API key at once, far past its rate, in the same window: together
they admit the limit, never more, and no fewer than a few percent below it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parents[2]

# One process: django set up on the test settings and the test run's Redis, its
# clock frozen at the window's middle (both processes in the same window), then
# it waits for the start signal and asks to admit ATTEMPTS requests of one key.
_DRIVER = """
import json, os, sys, time
import django
django.setup()
import time_machine
from core.api.principal import Principal
from core.api.throttling import admit

at, go, attempts = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
principal = Principal(kind="apikey", ident="two-processes", label="k", tenant_id=1)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
with time_machine.travel(at, tick=False):
    admitted = sum(1 for _ in range(attempts) if admit(principal) is None)
print(json.dumps({"admitted": admitted}), flush=True)
"""


def _drive(limit: int, attempts: int, tmp_path: Path) -> list[int]:
    go = tmp_path / "go"
    at = (int(time.time()) // 3600 + 1) * 3600 + 1800  # the middle of an hour window
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config_hub.settings.test", REDIS_URL=settings.REDIS_URL,
               API_THROTTLE_RATE=f"{limit}/hour", PYTHONPATH=str(REPO))
    drivers = [subprocess.Popen([sys.executable, "-c", _DRIVER, str(at), str(go), str(attempts)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for driver in drivers:
            assert driver.stdout.readline().strip() == "ready", driver.stderr.read()
        go.touch()
        results = []
        for driver in drivers:
            out, err = driver.communicate(timeout=120)
            assert driver.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1])["admitted"])
        return results
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()


def test_throttle__two_processes_over_the_rate__admit_the_limit_within_a_few_percent(tmp_path):
    limit = 20_000  # blocks of 200: the leases, not exact counting, are at work

    # Each asks for 60 % of the limit: together 120 %, so neither can take it all alone.
    admitted = _drive(limit, attempts=limit * 6 // 10, tmp_path=tmp_path)

    assert sum(admitted) <= limit
    assert sum(admitted) >= limit * 0.97, admitted


def test_throttle__small_rate_two_processes__exact(tmp_path):
    admitted = _drive(50, attempts=200, tmp_path=tmp_path)

    assert sum(admitted) == 50
