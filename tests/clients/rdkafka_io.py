"""confluent-kafka (librdkafka) helpers shared by the client tests: create a
topic, produce a workload with delivery reports, read a topic back in full."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from workload import Message, Record

OFFSET_BEGINNING = -2


def create_topic(bootstrap: str, topic: str, partitions: int, config: dict | None = None) -> None:
    """CreateTopics through librdkafka's AdminClient; fails the test on any error."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=15, request_timeout=15)
    futures[topic].result(timeout=20)
    wait_for_partitions(bootstrap, topic, partitions)


def wait_for_partitions(bootstrap: str, topic: str, partitions: int, timeout: float = 15) -> None:
    """Wait until Metadata shows the topic with all its partitions led by a broker."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        md = admin.list_topics(topic, timeout=5)
        seen = md.topics.get(topic)
        if seen is not None and seen.error is None and len(seen.partitions) == partitions \
                and all(p.leader >= 0 for p in seen.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {topic!r} never showed {partitions} led partitions in Metadata; last seen: "
                         f"{None if seen is None else (seen.error, len(seen.partitions))}")


def producer_config(bootstrap: str, **overrides) -> dict:
    """A producer tuned for volume: large batches, a short linger, deep queues."""
    config = {
        "bootstrap.servers": bootstrap,
        "partitioner": "murmur2_random",   # Java-compatible placement (KAFKA-COMPAT.md 6)
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": 60_000,
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return config


def produce_all(configs: list[dict], parts: list[list[Message]], topic: str,
                timeout: float = 120, metadata_first: bool = False) -> dict[int, tuple[int, int]]:
    """Produce parts[i] with a producer made from configs[i], interleaved so
    that all producers are busy at once. Returns {message index: (partition,
    offset)} from the delivery reports; fails the test if any delivery failed,
    did not finish in time, or a producer hit a fatal error. With `metadata_first`
    each producer learns the topic's partitions before its first message: messages
    produced before that wait in librdkafka's unassigned queue and may join the
    partition as a batch of their own."""
    delivered: dict[int, tuple[int, int]] = {}
    errors: list[str] = []
    client_errors: list[KafkaError] = []
    producers = [Producer({**config, "error_cb": client_errors.append}) for config in configs]
    if metadata_first:
        for producer in producers:
            producer.list_topics(topic, timeout=15)

    def report(index):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"message {index}: {err}")
            else:
                delivered[index] = (msg.partition(), msg.offset())
        return on_delivery

    def produce(producer, m: Message):
        kwargs = {"timestamp": m.timestamp} if m.timestamp is not None else {}
        while True:
            try:
                producer.produce(topic, value=m.value, key=m.key, on_delivery=report(m.index), **kwargs)
                return
            except BufferError:
                producer.poll(0.05)

    try:
        longest = max(len(p) for p in parts)
        for i in range(longest):
            for producer, part in zip(producers, parts):
                if i < len(part):
                    produce(producer, part[i])
            if i % 1000 == 0:
                for producer in producers:
                    producer.poll(0)
        deadline = time.monotonic() + timeout
        for producer in producers:
            left = producer.flush(max(0.1, deadline - time.monotonic()))
            assert left == 0, f"{left} messages still undelivered after {timeout} s"
    except (KafkaException, SystemError) as err:
        # After a fatal error librdkafka purges the queue and flush() raises; with
        # delivery callbacks, confluent-kafka 2.16 raises a bare SystemError and
        # the reason is only in librdkafka's log (stderr, a line with FATAL).
        raise AssertionError(
            f"producer failed: {err!r} (see the FATAL line in the captured stderr); "
            f"client errors: {[e.str() for e in client_errors]}; "
            f"{len(errors)} failed deliveries, e.g. {errors[:2]}") from None
    fatal = [e.str() for e in client_errors if e.fatal()]
    assert not fatal, f"producer fatal error: {fatal}"
    assert not errors, f"{len(errors)} deliveries failed, e.g. {errors[:5]}"
    return delivered


def consumer_config(bootstrap: str, **overrides) -> dict:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "sluice-tests-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "check.crcs": True,
        "fetch.wait.max.ms": 100,
    }
    config.update({k.replace("_", "."): v for k, v in overrides.items()})
    return config


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """{partition: (log start offset, high watermark)} through ListOffsets."""
    consumer = Consumer(consumer_config(bootstrap))
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                for p in range(partitions)}
    finally:
        consumer.close()


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 120,
                **overrides) -> list[Record]:
    """Read every partition from the beginning up to its current high watermark,
    with assign() (no group membership) and CRC checks on."""
    marks = high_watermarks(bootstrap, topic, partitions)
    consumer = Consumer(consumer_config(bootstrap, **overrides))
    records: list[Record] = []
    pending = {p for p, (_, hwm) in marks.items() if hwm > 0}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        if msg.offset() >= marks[msg.partition()][1]:
                            pending.discard(msg.partition())
                        continue
                    raise KafkaException(err)
                _, ts = msg.timestamp()
                records.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value(), ts))
                if msg.offset() + 1 >= marks[msg.partition()][1]:
                    pending.discard(msg.partition())
    finally:
        consumer.close()
    assert not pending, (
        f"timed out after {timeout} s reading {topic}: partitions {sorted(pending)} did not reach "
        f"their high watermarks {[marks[p] for p in sorted(pending)]}; got {len(records)} records")
    return records
