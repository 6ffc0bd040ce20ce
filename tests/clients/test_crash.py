"""Crash safety under --flush always (issue 2).

DESIGN.md, Storage: "Nothing that was acknowledged under flush=always may be
lost; nothing invalid may ever be served." This test holds the broker to that
with real producers and real SIGKILLs.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Producer

import rdkafka_io
from workload import check_offsets_contiguous

TOPIC = "crash"
PARTITIONS = 6
PRODUCERS = 3
CYCLES = int(os.environ.get("SLUICE_CRASH_CYCLES", "20"))
RATE_PER_PRODUCER = 1500       # messages per second, to keep the volume checkable
CODECS = ("none", "lz4", "zstd")


def make_value(producer: int, seq: int) -> bytes:
    """`p<producer>-s<seq>-<filler>#<blake2b of the rest>`: any torn or
    mixed-up value fails its own checksum."""
    rng = random.Random(producer * 1_000_003 + seq)
    body = b"p%d-s%d-" % (producer, seq) + rng.randbytes(rng.randrange(10, 600)).hex().encode()
    return body + b"#" + hashlib.blake2b(body, digest_size=8).hexdigest().encode()


def value_is_intact(value: bytes | None) -> bool:
    if not value or b"#" not in value:
        return False
    body, digest = value.rsplit(b"#", 1)
    return hashlib.blake2b(body, digest_size=8).hexdigest().encode() == digest


class AckingProducer(threading.Thread):
    """Produces continuously with acks=all and records every acknowledged
    (partition, offset, value). Failed deliveries (broker down for longer than
    the message timeout) are counted, not checked: they were never promised."""

    def __init__(self, number: int, bootstrap: str, cycle: list[int]):
        super().__init__(name=f"producer-{number}", daemon=True)
        self.number = number
        self.cycle = cycle
        self.stop = threading.Event()
        self.acked: list[tuple[int, int, bytes, int]] = []   # partition, offset, value, cycle
        self.failed = 0
        self.error: BaseException | None = None
        config = rdkafka_io.producer_config(
            bootstrap, acks="all", linger_ms=5, compression_type=CODECS[number % len(CODECS)],
            message_timeout_ms=30_000, queue_buffering_max_messages=50_000,
            reconnect_backoff_ms=20, reconnect_backoff_max_ms=200)
        # "Connection refused" while the broker is down is expected here: keep
        # librdkafka's log to levels 0-2 (fatal and critical).
        config["log_level"] = 2
        self.producer = Producer(config)

    def on_delivery(self, err, msg):
        if err is None:
            self.acked.append((msg.partition(), msg.offset(), msg.value(), self.cycle[0]))
        else:
            self.failed += 1

    def run(self):
        try:
            seq = 0
            started = time.monotonic()
            while not self.stop.is_set():
                due = int((time.monotonic() - started) * RATE_PER_PRODUCER)
                while seq < due and not self.stop.is_set():
                    value = make_value(self.number, seq)
                    try:
                        self.producer.produce(TOPIC, value=value, key=b"k%d" % (seq % 97),
                                              on_delivery=self.on_delivery)
                        seq += 1
                    except BufferError:
                        self.producer.poll(0.05)
                self.producer.poll(0.01)
            self.producer.flush(60)
        except BaseException as err:  # reported by the test, not lost in the thread
            self.error = err


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_acknowledged_records_survive_repeated_sigkill(broker_factory):
    """Three confluent-kafka producers (acks=all, codecs none/lz4/zstd) write
    continuously to a 6-partition topic while the broker, running with
    --flush always, is SIGKILLed at random moments and restarted, 20 times.
    Afterwards every acknowledged record is at its acknowledged offset, byte
    for byte; every record served passes the consumer's CRC check and its
    own checksum; and each partition's offsets run 0..n-1 without holes."""
    broker = broker_factory(flush="always")
    rdkafka_io.create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    rng = random.Random(int(os.environ.get("SLUICE_CRASH_SEED", "2")))

    cycle = [0]
    producers = [AckingProducer(n, broker.bootstrap, cycle) for n in range(PRODUCERS)]
    for p in producers:
        p.start()
    try:
        for lifetime in range(1, CYCLES + 1):
            cycle[0] = lifetime
            # Mostly a second or so of traffic, sometimes a kill right after start.
            time.sleep(rng.choice([rng.uniform(0.0, 0.1), rng.uniform(0.3, 2.0), rng.uniform(0.3, 2.0)]))
            broker.kill9()
            time.sleep(rng.uniform(0.0, 0.3))
            broker.start()
        cycle[0] = CYCLES + 1
        time.sleep(1.5)
    finally:
        for p in producers:
            p.stop.set()
        for p in producers:
            p.join(90)
    for p in producers:
        assert p.error is None, f"{p.name} raised {p.error!r}"
        assert not p.is_alive(), f"{p.name} did not finish flushing"

    acked = [a for p in producers for a in p.acked]
    cycles_with_acks = {c for *_, c in acked}
    assert len(cycles_with_acks) >= CYCLES // 2, (
        f"acknowledgements arrived in only {len(cycles_with_acks)} of {CYCLES + 1} broker lifetimes: "
        "the broker was not serving long enough for this test to mean anything")

    records = rdkafka_io.consume_all(broker.bootstrap, TOPIC, PARTITIONS, timeout=180)
    broken = [(r.partition, r.offset) for r in records if not value_is_intact(r.value)]
    assert not broken, f"{len(broken)} records served with a corrupt value, e.g. at {broken[:5]}"
    check_offsets_contiguous(records)

    at = {(r.partition, r.offset): r.value for r in records}
    lost = [(p, o, c) for p, o, v, c in acked if at.get((p, o)) != v]
    by_cycle = defaultdict(int)
    for *_, c in lost:
        by_cycle[c] += 1
    assert not lost, (
        f"{len(lost)} of {len(acked)} acknowledged records are missing or different at their offset "
        f"(partition, offset, lifetime): {lost[:5]}; lost per broker lifetime: {dict(by_cycle)}")
    print(f"{len(acked)} acknowledged, {sum(p.failed for p in producers)} failed deliveries, "
          f"{len(records)} records stored after {CYCLES} kills")
