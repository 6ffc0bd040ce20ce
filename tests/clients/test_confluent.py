"""confluent-kafka (librdkafka 2.16) against Sluice: the main user story.

librdkafka sends Produce v10, Fetch v16, ListOffsets v7, Metadata v13 and
CreateTopics v4 here (KAFKA-COMPAT.md section 1).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

import rdkafka_io
from workload import CODECS, check_story, make_messages, split_by_key

PARTITIONS = 8
MESSAGES = 100_000


def read_and_check(broker, topic, sent, delivered):
    records = rdkafka_io.consume_all(broker.bootstrap, topic, PARTITIONS)
    check_story(sent, records, partitions=PARTITIONS, delivered=delivered)
    return records


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_100k_keyed_messages_in_four_codecs_survive_restart_and_kill(broker_factory):
    """Four producers, one per codec (gzip, snappy, lz4, zstd), send 100,000
    keyed messages of varied sizes with acks=all to an 8-partition topic; each
    key belongs to one producer. Reading everything back from the beginning
    gives each message exactly once, in order per key, byte for byte, at the
    partition and offset its delivery report named. The same holds after a
    graceful restart, and after a SIGKILL under --flush always."""
    broker = broker_factory(flush="always")
    topic = "orders"
    rdkafka_io.create_topic(broker.bootstrap, topic, PARTITIONS)

    sent = make_messages(MESSAGES)
    configs = [rdkafka_io.producer_config(broker.bootstrap, compression_type=codec) for codec in CODECS]
    delivered = rdkafka_io.produce_all(configs, split_by_key(sent, len(CODECS)), topic)
    read_and_check(broker, topic, sent, delivered)

    broker.restart()
    read_and_check(broker, topic, sent, delivered)

    broker.restart(kill=True)
    read_and_check(broker, topic, sent, delivered)


def test_idempotent_producer_keeps_order_and_offsets(broker):
    """An idempotent producer (enable.idempotence=true: InitProducerId, then
    batches with producer id and sequences) gets every message written once,
    in order, at the offsets it was told."""
    topic = "idempotent"
    rdkafka_io.create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = make_messages(10_000, seed=2)
    configs = [rdkafka_io.producer_config(broker.bootstrap, compression_type=codec, enable_idempotence=True)
               for codec in ("lz4", "zstd")]
    delivered = rdkafka_io.produce_all(configs, split_by_key(sent, 2), topic)
    read_and_check(broker, topic, sent, delivered)


def test_offsets_for_times_finds_the_first_record_at_or_after_a_timestamp(broker):
    """Messages produced with explicit timestamps one second apart come back
    with those timestamps, and ListOffsets by timestamp (offsets_for_times)
    returns, per partition, the first offset whose timestamp is at or after the
    one asked for, also inside a compressed batch; past the last record it
    returns the end (-1)."""
    topic = "timed"
    partitions = 2
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    base = int(time.time() * 1000) - 3_600_000
    producer = Producer(rdkafka_io.producer_config(broker.bootstrap, compression_type="lz4"))
    count = 300
    for i in range(count):
        # Partition p, offset k holds timestamp base + (2k + p) * 1000.
        producer.produce(topic, value=b"tick-%d" % i, key=b"k", partition=i % 2, timestamp=base + i * 1000)
        if i % 25 == 24:
            producer.flush(10)      # several batches, 12-13 records each, per partition
    assert producer.flush(10) == 0

    records = rdkafka_io.consume_all(broker.bootstrap, topic, partitions)
    assert len(records) == count
    for r in records:
        assert r.timestamp == base + (2 * r.offset + r.partition) * 1000, f"timestamp of {r}"

    def expected_offset(partition, ts):
        for k in range(count // 2):
            if base + (2 * k + partition) * 1000 >= ts:
                return k
        return -1

    targets = [base - 5000, base, base + 1, base + 999, base + 1000, base + 25_000,
               base + 26_500, base + 149_000, base + 298_000, base + 299_000, base + 299_001,
               base + 10_000_000]
    consumer = Consumer(rdkafka_io.consumer_config(broker.bootstrap))
    try:
        for partition in range(partitions):
            for ts in targets:
                (answer,) = consumer.offsets_for_times([TopicPartition(topic, partition, ts)], timeout=10)
                want = expected_offset(partition, ts)
                assert answer.error is None, f"offsets_for_times(partition {partition}, base+{ts - base}): {answer.error}"
                assert answer.offset == want, (
                    f"partition {partition}, timestamp base+{ts - base} ms: offset {answer.offset}, "
                    f"expected {want} (the first record at or after that time)")
    finally:
        consumer.close()


def test_a_consumer_can_start_at_any_offset(broker):
    """Replay from any offset: 1,000 records in compressed batches of 50; a
    consumer assigned at offset k (also in the middle of a batch) gets record
    k first and then every later record in order."""
    topic = "replay"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    producer = Producer(rdkafka_io.producer_config(broker.bootstrap, compression_type="zstd"))
    for i in range(1000):
        producer.produce(topic, value=b"record-%04d" % i, partition=0)
        if i % 50 == 49:
            producer.flush(10)
    assert producer.flush(10) == 0

    consumer = Consumer(rdkafka_io.consumer_config(broker.bootstrap, enable_partition_eof=False))
    try:
        for start in (0, 1, 49, 50, 77, 500, 999):
            consumer.assign([TopicPartition(topic, 0, start)])
            got = []
            deadline = time.monotonic() + 15
            while len(got) < min(20, 1000 - start) and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=20, timeout=0.5):
                    assert msg.error() is None, msg.error()
                    got.append((msg.offset(), msg.value()))
            want = [(o, b"record-%04d" % o) for o in range(start, min(start + 20, 1000))]
            assert got[:len(want)] == want, f"assigned at offset {start}, got {got[:3]}..."
            consumer.unassign()
    finally:
        consumer.close()


def test_topic_metadata_lists_all_partitions_with_a_leader(broker):
    """Metadata for a new topic shows all its partitions, each led by the one
    broker, which is also the controller (admin requests go there)."""
    rdkafka_io.create_topic(broker.bootstrap, "meta", 5)
    md = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert len(md.brokers) == 1
    (node,) = md.brokers.values()
    assert (node.host, node.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == node.id
    topic = md.topics["meta"]
    assert sorted(topic.partitions) == list(range(5))
    assert all(p.leader == node.id for p in topic.partitions.values())
