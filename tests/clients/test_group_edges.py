"""Consumer groups at their edges, with confluent-kafka (librdkafka) and kafka-python:
committed offsets of a deleted topic, KIP-848 regex subscriptions, commits from
assign()-only consumers under the consumer protocol, and static members whose
instance id is still in use.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

OFFSET_INVALID = -1001  # librdkafka: no committed offset


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    a = admin(bootstrap)
    for f in a.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        f.result(timeout=15)


def delete_topic(bootstrap: str, topic: str) -> None:
    a = admin(bootstrap)
    for f in a.delete_topics([topic], operation_timeout=15).values():
        f.result(timeout=15)


def produce(bootstrap: str, topic: str, partitions: int, count: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n in range(start, start + count):
        p.produce(topic, value=str(n).encode(), partition=n % partitions)
    assert p.flush(30) == 0


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def consume(consumer: Consumer, count: int, timeout: float = 30) -> list[tuple[int, int, int]]:
    """(partition, offset, value) of the next `count` records."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        m = consumer.poll(0.2)
        if m is None or m.error():
            continue
        out.append((m.partition(), m.offset(), int(m.value())))
    assert len(out) == count, f"consumed {len(out)} of {count} records"
    return out


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def broker_errors(broker) -> list[str]:
    return [line for line in broker.log_path.read_text(errors="replace").splitlines()
            if " ERROR " in line]


# --- 1. DeleteTopics takes the topic's committed offsets with it ---------------------


def test_a_recreated_topic_starts_without_the_deleted_topics_committed_offsets(broker):
    """A group commits offset 50 on both partitions of a topic; the topic is deleted and
    created again; OffsetFetch has nothing for the group, and the group reads the new
    topic from its first record (Kafka deletes a deleted topic's offsets from every
    group). The offsets stay gone after a restart."""
    bs, topic = broker.bootstrap, "recycled"
    groups = [f"g-recycled-{i}" for i in range(4)]  # owned by both shards
    create_topic(bs, topic, 2)
    produce(bs, topic, 2, 100)
    for group in groups:
        c = Consumer({"bootstrap.servers": bs, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        consume(c, 100)
        c.commit(asynchronous=False)
        c.close()
        assert committed(bs, group, topic, 2) == {0: 50, 1: 50}
    delete_topic(bs, topic)
    create_topic(bs, topic, 2)
    for group in groups:
        assert committed(bs, group, topic, 2) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}, group
    produce(bs, topic, 2, 10, start=1000)
    c = Consumer({"bootstrap.servers": bs, "group.id": groups[0],
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    records = consume(c, 10)
    c.close()
    assert sorted(v for _, _, v in records) == list(range(1000, 1010))
    assert sorted(o for _, o, _ in records) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    broker.restart()
    for group in groups:
        assert committed(bs, group, topic, 2) == {0: OFFSET_INVALID, 1: OFFSET_INVALID}, group


def test_offsets_of_an_open_transaction_do_not_land_on_a_recreated_topic(broker):
    """A transactional producer sends offsets for a topic to its transaction; the topic
    is deleted and created again before the transaction commits; after the commit the
    group has no offset on the new topic (pending transactional offsets of a deleted
    topic are dropped, as Kafka does)."""
    bs, topic, group = broker.bootstrap, "txn-recycled", "g-txn-recycled"
    create_topic(bs, topic, 1)
    create_topic(bs, "txn-out", 1)
    produce(bs, topic, 1, 20)
    c = Consumer({"bootstrap.servers": bs, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    consume(c, 20)
    p = Producer({"bootstrap.servers": bs, "transactional.id": "tx-recycled"})
    p.init_transactions(15)
    p.begin_transaction()
    p.produce("txn-out", value=b"out")
    p.send_offsets_to_transaction([TopicPartition(topic, 0, 20)],
                                  c.consumer_group_metadata(), 15)
    c.close()
    delete_topic(bs, topic)
    create_topic(bs, topic, 1)
    p.commit_transaction(15)
    assert committed(bs, group, topic, 1) == {0: OFFSET_INVALID}


def test_deleting_and_recreating_a_written_topic_logs_no_error(broker_factory):
    """Producers with acks=all write to a topic under flush=always while it is deleted
    and created again, ten times: the broker logs no ERROR (a sync that raced the
    removal used to write the deleted partition's recovery checkpoint and index into
    a directory that was gone, or already the new topic's) and the new topic works."""
    broker = broker_factory(flush="always", extra_args=("--auto-create-topics", "false"))
    bs, topic = broker.bootstrap, "churn"
    stop = threading.Event()

    def write() -> None:
        p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 0,
                      "message.timeout.ms": 60000})
        n = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=b"v" * 200, partition=n % 8)
                n += 1
            except (BufferError, KafkaException):
                p.poll(0.01)
            p.poll(0)
        p.flush(1)

    create_topic(bs, topic, 8)
    writers = [threading.Thread(target=write, daemon=True) for _ in range(2)]
    for w in writers:
        w.start()
    try:
        for _ in range(10):
            time.sleep(0.3)
            delete_topic(bs, topic)
            create_topic(bs, topic, 8)
    finally:
        stop.set()
        for w in writers:
            w.join(30)
    produce(bs, topic, 8, 16, start=0)
    assert broker_errors(broker) == []


# --- 5. KIP-848 regex subscriptions ----------------------------------------------------


def test_a_kip848_regex_subscription_gets_the_matching_topics_and_follows_new_ones(broker):
    """librdkafka with group.protocol=consumer subscribes to "^orders-.*": it sends an
    empty topic list and SubscribedTopicRegex. The consumer is assigned both partitions
    of both matching topics (not the one that does not match) and reads their records;
    a matching topic created later joins the assignment and is read too."""
    bs = broker.bootstrap
    for t in ("orders-eu", "orders-us", "payments"):
        create_topic(bs, t, 2)
        produce(bs, t, 2, 10)
    c = Consumer({"bootstrap.servers": bs, "group.id": "g-regex", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 1000})
    c.subscribe(["^orders-.*"])
    try:
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 20 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.add((m.topic(), m.partition(), m.offset()))
        assert len(seen) == 20, f"read {len(seen)} of the 20 records of orders-*"
        assert {t for t, _, _ in seen} == {"orders-eu", "orders-us"}
        assert {(tp.topic, tp.partition) for tp in c.assignment()} == {
            ("orders-eu", 0), ("orders-eu", 1), ("orders-us", 0), ("orders-us", 1)}
        create_topic(bs, "orders-ap", 2)
        produce(bs, "orders-ap", 2, 10)
        late = set()
        deadline = time.monotonic() + 60
        while len(late) < 10 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error() and m.topic() == "orders-ap":
                late.add((m.partition(), m.offset()))
        assert len(late) == 10, f"read {len(late)} of the 10 records of the new topic"
    finally:
        c.close()


# --- 6. commits of assign()-only consumers under the consumer protocol -----------------


def test_an_assign_only_consumer_commits_under_the_consumer_protocol(broker):
    """A librdkafka consumer with group.protocol=consumer that uses assign() (no
    subscription, so member epoch -1 and no group on the broker) commits its position;
    the commit is accepted, as Kafka accepts it for simple consumers, and a new
    consumer of the group resumes after it."""
    bs, topic, group = broker.bootstrap, "assigned", "g-assigned"
    create_topic(bs, topic, 1)
    produce(bs, topic, 1, 30)
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    consume(c, 20)
    c.commit(asynchronous=False)  # raises KafkaException on a refused commit
    c.close()
    assert committed(bs, group, topic, 1) == {0: 20}
    k = __import__("kafka")
    kc = k.KafkaConsumer(bootstrap_servers=bs, group_id=group, enable_auto_commit=False)
    try:
        tp = k.TopicPartition(topic, 0)
        kc.assign([tp])
        assert kc.committed(tp) == 20
    finally:
        kc.close()


# --- 7. KIP-848 static members ----------------------------------------------------------


def test_a_second_kip848_member_with_an_instance_id_in_use_is_refused(broker):
    """Two librdkafka consumers (group.protocol=consumer) with the same group.instance.id:
    the second is refused with UNRELEASED_INSTANCE_ID while the first is in the group,
    and the first keeps its partitions and keeps reading."""
    bs, topic, group = broker.bootstrap, "static848", "g-static848"
    create_topic(bs, topic, 2)
    produce(bs, topic, 2, 10)
    conf = {"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
            "group.instance.id": "instance-1", "auto.offset.reset": "earliest"}
    first = Consumer(conf)
    first.subscribe([topic])
    second = None
    try:
        consume(first, 10)
        before = {(tp.topic, tp.partition) for tp in first.assignment()}
        assert before == {(topic, 0), (topic, 1)}
        errors = []
        second = Consumer({**conf, "error_cb": lambda e: errors.append(e)})
        second.subscribe([topic])
        # librdkafka raises UNRELEASED_INSTANCE_ID as a fatal error naming it.
        unreleased = "instance ID is still used by another member"

        def refused() -> bool:
            return any(e.code() == KafkaError.UNRELEASED_INSTANCE_ID or unreleased in e.str()
                       for e in errors)

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not refused():
            try:
                m = second.poll(0.2)
            except KafkaException as e:
                errors.append(e.args[0])
                break
            if m is not None and m.error():
                errors.append(m.error())
            first.poll(0)
        assert refused(), f"errors seen: {errors}"
        assert not second.assignment()
        produce(bs, topic, 2, 10, start=100)
        consume(first, 10)
        assert {(tp.topic, tp.partition) for tp in first.assignment()} == before
    finally:
        first.close()
        if second is not None:
            second.close()
