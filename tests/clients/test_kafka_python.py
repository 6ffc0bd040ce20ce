"""kafka-python 3.0 against Sluice: the same story as test_confluent.py, told
by a client with its own protocol code (generated from Kafka's JSON schemas).

kafka-python sends ApiVersions v4, Produce v9, Fetch v12, ListOffsets v10,
Metadata v13, CreateTopics v7 and, as it is idempotent by default,
InitProducerId v4 (KAFKA-COMPAT.md section 1).
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from kafka_python_io import consume_all, create_topic, new_producer, produce_all
from workload import CODECS, check_story, make_messages, split_by_key

PARTITIONS = 8
MESSAGES = 100_000


def story(broker, topic: str, count: int, seed: int, **producer_config):
    create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = make_messages(count, seed=seed)
    producers = [new_producer(broker.bootstrap, compression_type=codec, **producer_config)
                 for codec in CODECS]
    try:
        delivered = produce_all(producers, split_by_key(sent, len(producers)), topic)
    finally:
        for p in producers:
            p.close(timeout=5)
    check_story(sent, consume_all(broker.bootstrap, topic, PARTITIONS),
                partitions=PARTITIONS, delivered=delivered)
    return sent, delivered


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_100k_keyed_messages_from_idempotent_producers_survive_restart_and_kill(broker_factory):
    """kafka-python's default producer is idempotent (InitProducerId, then
    sequenced batches). Four of them, one per codec (gzip, snappy, lz4, zstd),
    send 100,000 keyed messages to an 8-partition topic. Everything comes back
    once, in order per key, byte for byte, at the acknowledged offsets; also
    after a graceful restart and after a SIGKILL under --flush always."""
    broker = broker_factory(flush="always")
    topic = "orders-kp"
    sent, delivered = story(broker, topic, MESSAGES, seed=11)

    broker.restart()
    check_story(sent, consume_all(broker.bootstrap, topic, PARTITIONS),
                partitions=PARTITIONS, delivered=delivered)

    broker.restart(kill=True)
    check_story(sent, consume_all(broker.bootstrap, topic, PARTITIONS),
                partitions=PARTITIONS, delivered=delivered)


def test_plain_producers_without_idempotence(broker):
    """With enable_idempotence=False (no producer id, sequence -1) the same
    story holds for 20,000 messages in the four codecs."""
    story(broker, "plain-kp", 20_000, seed=12, enable_idempotence=False)


def test_offsets_for_times(broker):
    """Records sent with explicit timestamps keep them, and offsets_for_times
    (ListOffsets v10 by timestamp) returns the first offset at or after the
    asked time, or None past the last record."""
    topic = "timed-kp"
    create_topic(broker.bootstrap, topic, 1)
    base = int(time.time() * 1000) - 7_200_000
    # Not idempotent: this test is about timestamps, not producer ids.
    producer = new_producer(broker.bootstrap, compression_type="zstd", linger_ms=0, enable_idempotence=False)
    futures = []
    try:
        for i in range(200):
            futures.append(producer.send(topic, key=b"t", value=b"at-%d" % i, partition=0,
                                         timestamp_ms=base + 10 * i))
            if i % 20 == 19:
                producer.flush(10)   # batches of 20 records
        producer.flush(10)
        assert [f.get(timeout=10).offset for f in futures] == list(range(200))
    finally:
        producer.close(timeout=5)

    records = consume_all(broker.bootstrap, topic, 1)
    assert [r.timestamp for r in sorted(records, key=lambda r: r.offset)] == [base + 10 * i for i in range(200)]

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    try:
        for target, want in [(base - 1, 0), (base, 0), (base + 1, 1), (base + 55, 6), (base + 200, 20),
                             (base + 205, 21), (base + 1990, 199), (base + 1991, None)]:
            found = consumer.offsets_for_times({tp: target}, timeout_ms=10000)[tp]
            got = None if found is None else found.offset
            assert got == want, f"offsets_for_times(base+{target - base}) = {found}, expected offset {want}"
            if found is not None:
                assert found.timestamp == base + 10 * want
    finally:
        consumer.close()
