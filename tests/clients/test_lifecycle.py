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


def test_the_readme_command_with_its_default_relative_data_dir_serves_topics(tmp_path, sluice_bin):
    """`sluice serve` run as the README says — no --data-dir, so data goes to the
    relative ./data — creates topics (explicitly and on first use), stores and
    serves records, and keeps them in ./data of the directory it was started in."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from conftest import free_ports, port_accepts

    port, admin = free_ports(2)
    proc = subprocess.Popen(
        [sluice_bin, "serve", "--listen", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin}"],
        cwd=tmp_path, stdout=open(tmp_path / "broker.log", "w"), stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(port):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "broker.log").read_text()
            time.sleep(0.05)
        bootstrap = f"127.0.0.1:{port}"
        admin_client = AdminClient({"bootstrap.servers": bootstrap})
        for fut in admin_client.create_topics([NewTopic("explicit", 3, 1)]).values():
            fut.result(30)
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce("explicit", value=b"one", partition=2)
        p.produce("on-first-use", value=b"two")
        assert p.flush(30) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "readme"})
        c.assign([TopicPartition("explicit", 2, 0), TopicPartition("on-first-use", 0, 0)])
        got = set()
        while len(got) < 2 and time.monotonic() < deadline + 30:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got.add(m.value())
        c.close()
        assert got == {b"one", b"two"}
        assert (tmp_path / "data" / "explicit-2").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
