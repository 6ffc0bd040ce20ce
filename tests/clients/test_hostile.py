"""Hostile and sloppy clients next to a well-behaved one (issue 14, item 5).

Each test starts the broker with a 128 MiB memory budget, starts `hostile.Steady` (a
producer with acks=all and a consumer, 200 records a second), lets one kind of bad
client loose for a few seconds, and then checks:

- the well-behaved client lost nothing, saw no duplicate and no error;
- the broker's RSS stayed under its memory budget all along;
- the broker logged no kind of line twice within a second;
- the bad client got what it deserved (refused, closed, answered in order, aborted).

Latency of the well-behaved client against a quiet run is measured, not asserted, by
perf/hostile_load.py (a benchmark, so as not to put timing into tests).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import rdkafka_io
import wire
from hostile import (ConnectionFlood, NeverReader, Pipeliner, Quitters, RssSampler, SlowFrames,
                     Steady, broker_log_bursts)

pytestmark = pytest.mark.slow

BUDGET = 128 << 20


def start_broker(broker_factory, *args: str):
    broker = broker_factory(extra_args=("--memory-budget", str(BUDGET), *args))
    rdkafka_io.create_topic(broker.bootstrap, "steady", 1)
    return broker


def beside_steady(broker, hostile, seconds: float) -> dict:
    """Run `hostile` for `seconds` while Steady runs; check what every test checks;
    return the hostile client's findings."""
    steady = Steady(broker.bootstrap, "steady")
    steady.start()
    time.sleep(1.0)
    log_from = broker.log_path.stat().st_size  # startup lines are one per shard
    rss = RssSampler(broker.proc.pid).start()
    hostile.start()
    time.sleep(seconds)
    steady.stop()
    hostile.stop()
    peak = rss.stop()
    broker.assert_alive()
    good = steady.found()
    print(f"steady: {good}\nhostile: {hostile.found()}\nbroker RSS peak {peak >> 20} MiB")
    assert good["errors"] == [], good
    assert good["acked"] == good["sent"] > 0, good
    assert good["lost"] == 0 and good["duplicates"] == 0, good
    assert 0 < peak < BUDGET, f"broker RSS peaked at {peak} bytes, over its budget of {BUDGET}"
    with open(broker.log_path, errors="replace") as log:
        log.seek(log_from)
        bursts = broker_log_bursts(log.read())
    assert bursts == {}, f"log lines of one kind less than a second apart: {bursts}"
    return hostile.found()


def test_a_connection_flood_is_refused_over_the_limit_and_others_keep_working(broker_factory):
    broker = start_broker(broker_factory, "--max-connections", "40")
    flood = ConnectionFlood(broker.port, 300)
    found = beside_steady(broker, flood, 3)
    # Two nets (shards) of 40 each, the steady client's own connections among them.
    assert found["held_open"] < 80 and found["closed_by_broker"] >= 300 - 80, found
    refused = sum(broker.per_shard("sluice_connections_refused_total").values())
    assert refused >= found["closed_by_broker"], (refused, found)
    assert "refusing connection" in broker.log_path.read_text()
    # The slots come back once the flood is gone.
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.api_versions_request(0, 7))
        corr, error, _ = wire.parse_api_versions_v0(wire.read_frame(sock))
    assert (corr, error) == (7, 0)


def test_requests_sent_a_byte_at_a_time_are_closed_at_the_request_read_timeout(broker_factory):
    broker = start_broker(broker_factory, "--request-read-timeout-ms", "3000")
    # A 26-byte ApiVersions request at a byte per 0.5 s would take 13 s.
    slow = SlowFrames(broker.port, 50, interval=0.5)
    found = beside_steady(broker, slow, 9)
    assert found["closed_by_broker"] == 50 and found["completed"] == 0, found
    assert 2.5 <= found["closed_after_s"] < 13, found
    assert "request not complete" in broker.log_path.read_text()


def test_a_client_that_never_reads_its_responses_is_closed_and_holds_nothing(broker_factory):
    broker = start_broker(broker_factory, "--idle-connection-timeout-ms", "4000")
    rdkafka_io.create_topic(broker.bootstrap, "bulk", 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    for i in range(2000):
        producer.produce("bulk", value=b"%d" % i * 2000, partition=0)
        producer.poll(0)
    assert producer.flush(60) == 0
    reader = NeverReader(broker.port, "bulk", 1)
    found = beside_steady(broker, reader, 10)
    assert found["requests_sent"] > 64, found  # more than the in-flight limit
    # The broker's end is gone (the client's own end may linger: with its receive
    # window shut, the broker's reset falls outside it).
    assert found["broker_side_open"] is False, found
    assert "took none of a response" in broker.log_path.read_text() \
        or "Operation timed out" in broker.log_path.read_text()


def test_thousands_of_pipelined_requests_are_all_answered_in_order(broker_factory):
    broker = start_broker(broker_factory)
    pipe = Pipeliner(broker.port, 20_000)
    found = beside_steady(broker, pipe, 3)
    assert found == {"requests": 20_000, "answered": 20_000, "in_order": True, "error": None}


def test_producers_vanishing_mid_transaction_are_aborted_and_hold_nothing_back(broker_factory):
    broker = start_broker(broker_factory)
    rdkafka_io.create_topic(broker.bootstrap, "txn-out", 1)
    quitters = Quitters("txn", broker.bootstrap, "txn-out", every=0.5)
    found = beside_steady(broker, quitters, 8)
    assert found["vanished"] >= 2 and found["failed"] == [], found
    # Their transactions time out (2 s) and are aborted: the last stable offset
    # reaches the end and a read_committed consumer sees none of their records.
    # (ListOffsets under read_committed, librdkafka's default, answers the last
    # stable offset: ask under read_uncommitted.)
    peek = Consumer(rdkafka_io.consumer_config(broker.bootstrap, isolation_level="read_uncommitted"))
    try:
        _, hwm = peek.get_watermark_offsets(TopicPartition("txn-out", 0), timeout=10, cached=False)
    finally:
        peek.close()
    assert hwm >= 100 * found["vanished"], (hwm, found)
    consumer = Consumer(rdkafka_io.consumer_config(broker.bootstrap, isolation_level="read_committed"))
    try:
        consumer.assign([TopicPartition("txn-out", 0, 0)])
        deadline = time.monotonic() + 30
        visible, at_end = 0, False
        while time.monotonic() < deadline and not at_end:
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is None:
                    visible += 1
                elif msg.error().code() == KafkaError._PARTITION_EOF and msg.offset() >= hwm:
                    at_end = True
        assert at_end and visible == 0, f"read_committed reached the end: {at_end}, saw {visible}"
    finally:
        consumer.close()
    assert "transaction timed out" in broker.log_path.read_text()


def test_members_vanishing_mid_rebalance_leave_a_group_that_works(broker_factory):
    broker = start_broker(broker_factory)
    rdkafka_io.create_topic(broker.bootstrap, "work", 2)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        producer.produce("work", value=b"job %d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    quitters = Quitters("group", broker.bootstrap, "work", every=0.5)
    found = beside_steady(broker, quitters, 8)
    assert found["vanished"] >= 2 and found["failed"] == [], found
    # A member that stays gets both partitions once the vanished ones time out.
    consumer = Consumer(rdkafka_io.consumer_config(broker.bootstrap, group_id="quitters",
                                                   session_timeout_ms=6000,
                                                   enable_partition_eof=False))
    try:
        consumer.subscribe(["work"])
        got = 0
        deadline = time.monotonic() + 60
        while got < 100 and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(100, timeout=0.5) if m.error() is None)
        assert got == 100, f"the member that stayed got {got} of 100 records"
    finally:
        consumer.close()
