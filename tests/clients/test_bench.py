"""`sluice bench` (the bundled load generator) against the real broker.

These tests check what the load generator reports, not how fast anything is: every
figure that depends on the machine's speed is left to scripts/bench.sh.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_ports, port_accepts


def bench(sluice_bin: str, *args: str, timeout: float = 120, progress: bool = False) -> dict:
    """Run `sluice bench ... --json` and return its JSON object (exit 0 required).
    `progress`: the run lasts over a second by its schedule, so it printed progress."""
    cmd = [sluice_bin, "bench", *args, "--json"]
    result = subprocess.run(cmd, capture_output=True, timeout=timeout)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}\n{stderr[-3000:]}"
    report = json.loads(result.stdout)
    if progress:  # a line a second on stderr while it runs
        assert "[   1 s] acked" in stderr, f"no progress line on stderr:\n{stderr[-2000:]}"
    return report


def assert_clean(report: dict) -> None:
    assert report["produced"] > 0, report
    assert report["produce_errors"] == 0, report["first_error"]
    assert report["consume_errors"] == 0, report["first_error"]
    assert report["first_error"] is None


def test_producers_and_consumers_see_every_message_and_the_broker_stores_each_once(broker, sluice_bin):
    """Two producers with keys and two consumers share four partitions at a fixed rate;
    every acknowledged message is consumed, and the broker's high watermarks add up to
    exactly the acknowledged count."""
    topic = "bench-story"
    r = bench(sluice_bin, "--brokers", broker.bootstrap, "--topic", topic,
              "--partitions", "4", "--producers", "2", "--consumers", "2",
              "--keys", "16", "--message-bytes", "200", "--rate", "2000",
              "--duration-s", "2", "--warmup-s", "0.5", "--curves", progress=True)
    assert_clean(r)
    assert r["consumed_total"] == r["produced_total"], r
    assert r["consumed"] == r["produced"], r
    assert r["foreign_skipped"] == 0
    assert r["produced_total"] > r["produced"], "warm-up messages are sent but not counted"
    assert r["config"]["partitions"] == 4 and r["config"]["keys"] == 16
    for key in ("produce_latency_us", "e2e_latency_us"):
        lat = r[key]
        assert lat["count"] == r["produced"], (key, lat)
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p99_9"] <= lat["max"], (key, lat)
        curve = r["curves"][key]
        assert curve[-1][0] == 100.0 and curve[-1][1] == lat["max"], (key, curve[-3:])
    hwms = {p: hwm for (t, p), (_, hwm) in broker.partition_hwms().items() if t == topic}
    assert sorted(hwms) == [0, 1, 2, 3], hwms
    assert sum(hwms.values()) == r["produced_total"], (hwms, r["produced_total"])
    assert all(h > 0 for h in hwms.values()), f"16 keys over 4 partitions left one empty: {hwms}"


def test_a_message_count_run_sends_exactly_that_many(broker, sluice_bin):
    r = bench(sluice_bin, "--brokers", broker.bootstrap, "--messages", "5000",
              "--producers", "3", "--warmup-s", "0", "--acks", "1", "--message-bytes", "100")
    assert_clean(r)
    assert r["produced_total"] == 5000
    assert r["produced"] == 5000
    assert r["e2e_latency_us"] is None, "no consumers, no end-to-end figures"


def test_a_second_run_on_the_same_topic_reads_only_its_own_messages(broker, sluice_bin):
    """Consumers of an existing topic start at its end, so the first run's messages are
    neither counted nor waited for."""
    common = ["--brokers", broker.bootstrap, "--topic", "reused", "--partitions", "3",
              "--consumers", "1", "--rate", "1000", "--duration-s", "1", "--warmup-s", "0.2"]
    first = bench(sluice_bin, *common)
    second = bench(sluice_bin, *common)
    for r in (first, second):
        assert_clean(r)
        assert r["consumed_total"] == r["produced_total"], r
    assert second["foreign_skipped"] == 0
    hwm = sum(h for (t, _), (_, h) in broker.partition_hwms().items() if t == "reused")
    assert hwm == first["produced_total"] + second["produced_total"]


def test_broker_metrics_show_fsync_and_time_queued_after_acks_all(broker_factory, sluice_bin):
    """Under flush=always, acks=all produce waits for the group commit's fdatasync: the
    broker's fsync histogram and its time-queued histogram both fill."""
    broker = broker_factory(flush="always")
    before = broker.metric("sluice_fsync_latency_seconds_count")
    r = bench(sluice_bin, "--brokers", broker.bootstrap, "--acks", "all", "--partitions", "2",
              "--messages", "2000", "--warmup-s", "0", "--linger-ms", "1")
    assert_clean(r)
    fsyncs = broker.metric("sluice_fsync_latency_seconds_count")[()]
    assert fsyncs > before.get((), 0), "acks=all under flush=always did no fdatasync"
    assert broker.metric("sluice_request_queued_seconds_count")[()] >= 1
    quantiles = {dict(k)["quantile"]: v for k, v in broker.metric("sluice_fsync_latency_seconds").items()}
    assert set(quantiles) == {"0.5", "0.9", "0.99", "0.999", "0.9999", "1"}
    assert 0 < quantiles["0.5"] <= quantiles["1"]


def test_an_unreachable_broker_is_an_error_not_a_report_of_zeros(sluice_bin):
    """Against a port nobody listens on, the bench fails instead of reporting zeros
    (after --request-timeout-s, creating the topic)."""
    (port,) = free_ports(1)
    cmd = [sluice_bin, "bench", "--brokers", f"127.0.0.1:{port}", "--messages", "10",
           "--warmup-s", "0", "--drain-timeout-s", "2", "--request-timeout-s", "3", "--json"]
    result = subprocess.run(cmd, capture_output=True, timeout=120)
    assert result.returncode != 0
    assert b"sluice:" in result.stderr


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_redis_streams_mode_counts_like_the_kafka_mode(sluice_bin):
    """The same generator against Redis Streams: XADD in, XREADGROUP out."""
    (port,) = free_ports(1)
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-redis-"))
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(port):
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.1)
        r = bench(sluice_bin, "--target", "redis", "--redis-url", f"redis://127.0.0.1:{port}",
                  "--partitions", "3", "--producers", "2", "--consumers", "2", "--keys", "5",
                  "--rate", "2000", "--duration-s", "1", "--warmup-s", "0.3")
        assert_clean(r)
        assert r["consumed_total"] == r["produced_total"], r
        assert r["e2e_latency_us"]["count"] == r["consumed"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            total = 0
            for p in range(3):
                key = f'{r["topic"]}-{p}'.encode()
                s.sendall(b"*2\r\n$4\r\nXLEN\r\n$%d\r\n%s\r\n" % (len(key), key))
                line = s.recv(64)
                assert line.startswith(b":"), line
                total += int(line[1:].strip())
        assert total == r["produced_total"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
