"""kafka-python helpers shared by the client tests: create a topic, produce
a workload and wait for every acknowledgement, read a topic back in full."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from workload import Message, Record


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        result = admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                                     timeout_ms=15000, wait_for_metadata=True)
        errors = [(t["name"], t["error_code"]) for t in result["topics"] if t["error_code"]]
        assert not errors, f"CreateTopics errors: {errors}"
    finally:
        admin.close()


def new_producer(bootstrap: str, **config) -> KafkaProducer:
    settings = dict(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                    batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
                    request_timeout_ms=30000, delivery_timeout_ms=120000)
    settings.update(config)
    return KafkaProducer(**settings)


def produce_all(producers: list[KafkaProducer], parts: list[list[Message]], topic: str,
                timeout: float = 180) -> dict[int, tuple[int, int]]:
    """Send parts[i] with producers[i], interleaved; wait for every ack.
    Returns {message index: (partition, offset)}."""
    futures = []
    longest = max(len(p) for p in parts)
    for i in range(longest):
        for producer, part in zip(producers, parts):
            if i < len(part):
                m = part[i]
                futures.append((m.index, producer.send(topic, key=m.key, value=m.value,
                                                       timestamp_ms=m.timestamp)))
    deadline = time.monotonic() + timeout
    for producer in producers:
        producer.flush(timeout=max(0.1, deadline - time.monotonic()))
    delivered = {}
    for index, future in futures:
        meta = future.get(timeout=max(0.1, deadline - time.monotonic()))
        delivered[index] = (meta.partition, meta.offset)
    return delivered


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 180) -> list[Record]:
    """Read every partition from the beginning to its high watermark with
    assign() + seek_to_beginning() (no group), CRC checks on."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             check_crcs=True, fetch_max_wait_ms=100, max_poll_records=10000,
                             max_partition_fetch_bytes=4 * 1024 * 1024)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(tps, timeout_ms=10000)
        pending = {tp for tp in tps if ends[tp] > 0}
        records = []
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for m in batch:
                    records.append(Record(m.partition, m.offset, m.key, m.value, m.timestamp))
                    if m.offset + 1 >= ends[tp]:
                        pending.discard(tp)
        assert not pending, (
            f"timed out reading {topic}: {sorted(tp.partition for tp in pending)} did not reach "
            f"their end offsets; got {len(records)} records")
        return records
    finally:
        consumer.close()
