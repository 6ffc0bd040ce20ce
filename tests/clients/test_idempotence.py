"""Idempotent producers across broker crashes (issue 4).

An idempotent producer keeps producing while the broker is SIGKILLed and restarted.
Batches that were written but not acknowledged before a kill are sent again after
the restart; the broker must recognise them from its recovered producer state (a
snapshot plus a replay of the log) and answer with their original offsets. Afterwards
every delivered record is in the log exactly once, in the order it was produced.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

import kafka_python_io
import rdkafka_io

PARTITIONS = 3
KILLS = 4


def value(n: int) -> bytes:
    return b"seq-%08d" % n


def check_exactly_once_in_order(records, delivered: set[bytes]) -> None:
    """Every delivered value appears once; no value appears twice; per partition
    (values of one key land on one partition) the sequence numbers increase."""
    counts = Counter(r.value for r in records)
    twice = [v for v, c in counts.items() if c > 1]
    assert not twice, f"{len(twice)} values are in the log more than once, e.g. {twice[:3]}"
    missing = delivered - set(counts)
    assert not missing, f"{len(missing)} delivered values are missing, e.g. {sorted(missing)[:3]}"
    by_partition: dict[int, list] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(r.partition, []).append(int(r.value.split(b"-")[1]))
    for p, seqs in by_partition.items():
        out_of_order = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
        assert not out_of_order, f"partition {p}: values out of order, e.g. {out_of_order[:3]}"


def kill_and_restart_while(produce, broker) -> None:
    """Run `produce` in a thread and SIGKILL/restart the broker KILLS times meanwhile."""
    errors: list[BaseException] = []

    def run():
        try:
            produce()
        except BaseException as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    for _ in range(KILLS):
        time.sleep(0.7)
        broker.kill9()
        time.sleep(0.2)
        broker.start()
    t.join(150)
    assert not t.is_alive(), "the producer did not finish"
    assert not errors, f"producer failed: {errors[0]!r}"


@pytest.mark.timeout(240)
def test_confluent_idempotent_producer_survives_sigkill_exactly_once(broker_factory):
    """confluent-kafka with enable.idempotence=true produces 60,000 values (one key
    per partition so order is checkable) while the broker is killed 4 times."""
    broker = broker_factory()
    topic = "idem-kill-ck"
    rdkafka_io.create_topic(broker.bootstrap, topic, PARTITIONS)
    delivered: set[bytes] = set()
    failed: list[str] = []
    total = 60_000

    def produce():
        config = rdkafka_io.producer_config(
            broker.bootstrap, enable_idempotence=True, linger_ms=5, compression_type="lz4",
            reconnect_backoff_ms=20, reconnect_backoff_max_ms=200, message_timeout_ms=120_000)
        config["log_level"] = 2
        p = Producer(config)

        def on_delivery(err, msg):
            if err is None:
                delivered.add(msg.value())
            else:
                failed.append(str(err))

        for n in range(total):
            while True:
                try:
                    p.produce(topic, key=b"k%d" % (n % PARTITIONS), value=value(n), on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            if n % 1000 == 0:
                p.poll(0)
                time.sleep(0.06)  # spread the load over the kills
        assert p.flush(120) == 0, "messages left undelivered"

    kill_and_restart_while(produce, broker)
    assert not failed, f"{len(failed)} deliveries failed, e.g. {failed[:3]}"
    assert len(delivered) == total
    records = rdkafka_io.consume_all(broker.bootstrap, topic, PARTITIONS)
    check_exactly_once_in_order(records, delivered)


@pytest.mark.timeout(240)
def test_kafka_python_default_producer_survives_sigkill_exactly_once(broker_factory):
    """kafka-python's default producer (idempotent, acks=all) does the same story."""
    broker = broker_factory()
    topic = "idem-kill-kp"
    kafka_python_io.create_topic(broker.bootstrap, topic, PARTITIONS)
    delivered: set[bytes] = set()
    total = 20_000

    def produce():
        p = kafka_python_io.new_producer(broker.bootstrap, linger_ms=5, reconnect_backoff_ms=20,
                                         reconnect_backoff_max_ms=200)
        futures = []
        for n in range(total):
            futures.append((value(n), p.send(topic, key=b"k%d" % (n % PARTITIONS), value=value(n))))
            if n % 1000 == 0:
                time.sleep(0.15)
        p.flush(120)
        for v, f in futures:
            f.get(timeout=1)  # raises if the record was not delivered
            delivered.add(v)
        p.close()

    kill_and_restart_while(produce, broker)
    assert len(delivered) == total
    records = kafka_python_io.consume_all(broker.bootstrap, topic, PARTITIONS)
    check_exactly_once_in_order(records, delivered)
