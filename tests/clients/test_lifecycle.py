"""Starting and stopping, again and again, on a busy machine.

CI machines have two cores shared with builds: a broker must come up every
time, with every shard, and stop when asked, however late its threads get to run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import _die_with_parent

STARTS = int(os.environ.get("SLUICE_LIFECYCLE_STARTS", "25"))


@pytest.fixture
def busy_cores():
    """Two processes spinning on the CPU for the length of the test."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_die_with_parent)
            for _ in range(os.cpu_count() or 2)]
    yield
    for hog in hogs:
        hog.send_signal(signal.SIGKILL)
        hog.wait()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_starts_with_every_shard_and_stops_under_cpu_load(broker_factory, busy_cores):
    """With every core busy, 2-shard brokers are started and stopped 25
    times, on a fresh data dir and again on the same one, each left alone for
    half a second before it is probed: each start serves Kafka and reports
    both shards on /metrics within 20 s, and each SIGTERM ends the process
    within 15 s with exit code 0."""
    slowest = 0.0
    for attempt in range(1, STARTS + 1):
        broker = broker_factory(start=False)
        for run in ("fresh", "restart"):
            began = time.monotonic()
            broker.start(settle=0.5)    # fails the test if a shard never comes up
            slowest = max(slowest, time.monotonic() - began - 0.5)
            code = broker.stop()
            assert code == 0, f"start #{attempt} ({run}): SIGTERM exit code {code}\n{broker.log_tail()}"
    print(f"{2 * STARTS} starts under load; slowest start {slowest:.2f} s")
