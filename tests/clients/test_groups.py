"""Consumer groups against Sluice with real clients: the classic protocol
(JoinGroup/SyncGroup/Heartbeat, librdkafka and kafka-python) and KIP-848
(`group.protocol=consumer`, librdkafka only), committed offsets that survive a
SIGKILL, and consumer lag in /metrics.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import parse_prometheus

PARTITIONS = 6


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    for f in futures.values():
        f.result(timeout=15)


def produce(bootstrap: str, topic: str, start: int, count: int) -> None:
    """Values "<n>" for n in [start, start+count), spread over all partitions."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "partitioner": "murmur2_random"})
    for n in range(start, start + count):
        while True:
            try:
                p.produce(topic, key=str(n).encode(), value=str(n).encode())
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    assert p.flush(30) == 0


class GroupMember:
    """One confluent-kafka consumer polling in its own thread."""

    def __init__(self, bootstrap: str, group: str, topic: str, name: str, protocol: str, **extra):
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 200,
        }
        if protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf["session.timeout.ms"] = 10000
            conf["heartbeat.interval.ms"] = 500
        on_assign = extra.pop("on_assign", None)
        conf.update(extra)
        self.name = name
        self.consumer = Consumer(conf)
        if on_assign is not None:
            self.consumer.subscribe([topic], on_assign=on_assign)
        else:
            self.consumer.subscribe([topic])
        self.records: list[tuple[int, int, int]] = []  # (partition, offset, value)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.assigned: set[int] = set()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            msg = self.consumer.poll(0.1)
            # Read here, on the polling thread: librdkafka serves it from the same queue.
            self.assigned = {tp.partition for tp in self.consumer.assignment()}
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    self.errors.append(str(msg.error()))
                continue
            self.records.append((msg.partition(), msg.offset(), int(msg.value())))
        self.consumer.close()  # commits what was consumed, then leaves the group

    def assignment(self) -> set[int]:
        return set(self.assigned)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), f"{self.name} did not close"


def wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def seen_values(members) -> Counter:
    return Counter(v for m in members for (_, _, v) in list(m.records))


def group_share_story(broker, protocol: str) -> None:
    topic, group = f"shared-{protocol}", f"g-{protocol}"
    create_topic(broker.bootstrap, topic)
    first, second = 3000, 3000
    produce(broker.bootstrap, topic, 0, first)
    members = [GroupMember(broker.bootstrap, group, topic, f"c{i}", protocol) for i in range(3)]
    try:
        wait_until(lambda: len(seen_values(members)) >= first, 60, "the first half to be consumed")
        wait_until(lambda: sorted(p for m in members for p in m.assignment()) == list(range(PARTITIONS))
                   and all(m.assignment() for m in members),
                   30, "three members to share the six partitions")
        leaver = members[2]
        taken = leaver.assignment()
        leaver.close()
        rest = members[:2]
        wait_until(lambda: set().union(*(m.assignment() for m in rest)) == set(range(PARTITIONS)),
                   30, f"the other two to take over partitions {sorted(taken)}")
        produce(broker.bootstrap, topic, first, second)
        total = first + second
        wait_until(lambda: len(seen_values(members)) >= total, 60, "every message to be consumed")
    finally:
        for m in members:
            if m.thread.is_alive():
                m.close()
    counts = seen_values(members)
    assert set(counts) == set(range(first + second)), "every message is consumed"
    dups = sum(c - 1 for c in counts.values())
    print(f"{protocol}: {first + second} messages, {dups} consumed twice")
    # Only messages consumed but not yet committed when the assignment moved may
    # be seen twice; the leaver commits on close, so that window is small.
    assert dups <= 200, f"{dups} duplicates is more than the uncommitted window"
    for m in members:
        assert not m.errors, f"{m.name}: {m.errors[:3]}"


def test_three_consumers_share_six_partitions_and_take_over_a_leavers_share(broker):
    """Three confluent-kafka consumers in one group (classic protocol) share six
    partitions; one closes; the other two take over its partitions; every message
    is consumed, with duplicates only inside the uncommitted window."""
    group_share_story(broker, "classic")


def test_the_same_with_the_kip848_consumer_protocol(broker):
    """The same story with group.protocol=consumer: ConsumerGroupHeartbeat,
    server-side assignment by topic id, revocation before reassignment."""
    group_share_story(broker, "consumer")


def test_kafka_python_consumers_share_a_topic(broker):
    """Three kafka-python consumers (JoinGroup v7, SyncGroup v5, OffsetCommit v8)
    share six partitions; one closes; the other two consume the rest."""
    from kafka import KafkaConsumer

    topic, group = "kp-shared", "kp-group"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 3000)
    seen: list[Counter] = [Counter() for _ in range(3)]
    stops = [threading.Event() for _ in range(3)]
    assignments: list[set[int]] = [set() for _ in range(3)]
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                              client_id=f"kp{i}", auto_offset_reset="earliest",
                              enable_auto_commit=True, auto_commit_interval_ms=200,
                              session_timeout_ms=10000, heartbeat_interval_ms=500)
            while not stops[i].is_set():
                for _, msgs in c.poll(timeout_ms=100).items():
                    for m in msgs:
                        seen[i][int(m.value)] += 1
                assignments[i] = {tp.partition for tp in c.assignment()}
            c.close()
        except Exception as err:  # reported by the test
            errors.append(f"kp{i}: {err!r}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    total = lambda: len(set().union(*seen))  # noqa: E731
    try:
        wait_until(lambda: total() >= 3000, 60, "the first half to be consumed")
        wait_until(lambda: all(assignments) and sum(map(len, assignments)) == PARTITIONS, 30,
                   "three kafka-python members to share six partitions")
        stops[2].set()
        threads[2].join(30)
        wait_until(lambda: assignments[0] | assignments[1] == set(range(PARTITIONS)), 30,
                   "the other two to take over")
        produce(broker.bootstrap, topic, 3000, 3000)
        wait_until(lambda: total() >= 6000, 60, "every message to be consumed")
    finally:
        for s in stops:
            s.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    counts = sum(seen, Counter())
    assert set(counts) == set(range(6000))
    dups = sum(c - 1 for c in counts.values())
    print(f"kafka-python: 6000 messages, {dups} consumed twice")
    assert dups <= 200


def test_two_groups_each_receive_every_message(broker):
    """Pub/sub across groups: two groups on one topic each get every message."""
    topic = "fanout"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 2000)
    a = [GroupMember(broker.bootstrap, "group-a", topic, f"a{i}", "classic") for i in range(2)]
    b = [GroupMember(broker.bootstrap, "group-b", topic, "b0", "consumer")]
    try:
        wait_until(lambda: len(seen_values(a)) >= 2000 and len(seen_values(b)) >= 2000, 60,
                   "both groups to consume everything")
    finally:
        for m in a + b:
            m.close()
    assert set(seen_values(a)) == set(range(2000))
    assert set(seen_values(b)) == set(range(2000))


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def test_committed_offsets_survive_a_sigkill_and_the_group_resumes_after_them(broker):
    """Offsets committed (and acknowledged) survive SIGKILL: after a restart the
    coordinator returns them, and a consumer of the group starts exactly there.
    Consumer lag in /metrics is high watermark minus committed offset."""
    topic, group = "resume", "resumers"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 600)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 60
    while got < 300 and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and not msg.error():
            got += 1
    assert got >= 300
    positions = {tp.partition: tp.offset for tp in c.position(c.assignment())}
    c.commit(asynchronous=False)  # synchronous: answered after the fdatasync
    c.close()
    before = committed(broker.bootstrap, group, topic)
    assert before == {p: o for p, o in positions.items() if o >= 0} | {
        p: -1001 for p in range(PARTITIONS) if positions.get(p, -1) < 0}

    lag = {int(l["partition"]): v for n, l, v in parse_prometheus(broker.metrics_text())
           if n == "sluice_group_lag" and l["group"] == group and l["topic"] == topic}
    hwm = {p: h for (t, p), (_, h) in broker.partition_hwms().items() if t == topic}
    for p, off in before.items():
        if off >= 0:
            assert lag[p] == hwm[p] - off

    broker.restart(kill=True)
    assert committed(broker.bootstrap, group, topic) == before

    # Enough new messages that every partition's end is past its committed offset.
    produce(broker.bootstrap, topic, 600, 1200)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    first: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while len(first) < PARTITIONS and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is not None and not msg.error():
            first.setdefault(msg.partition(), msg.offset())
    c.close()
    for p, off in before.items():
        if off >= 0:
            assert first[p] == off, f"partition {p} resumed at {first.get(p)}, committed {off}"


def test_offsets_follow_their_groups_when_the_shard_count_changes(broker):
    """Groups move between shards when --shards changes (owner = hash % shards):
    every shard reads every group log at startup and keeps the groups it owns, so
    committed offsets of many groups survive 2 → 1 → 3 shards."""
    topic = "reshard"
    create_topic(broker.bootstrap, topic)
    groups = [f"group-{i}" for i in range(8)]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    for i, g in enumerate(groups):
        c2 = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": g})
        c2.commit(offsets=[TopicPartition(topic, p, 10 * i + p) for p in range(PARTITIONS)],
                  asynchronous=False)
        c2.close()
    c.close()
    want = {g: {p: 10 * i + p for p in range(PARTITIONS)} for i, g in enumerate(groups)}
    for shards in (1, 3):
        broker.shards = shards
        broker.restart()
        assert {g: committed(broker.bootstrap, g, topic) for g in groups} == want, f"--shards {shards}"


def test_a_static_member_restarts_without_a_rebalance(broker):
    """KIP-345: a consumer with group.instance.id that restarts within its session
    timeout takes its old place: it gets the same partitions back and the other
    member is not rebalanced."""
    topic, group = "static", "static-group"
    create_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, 0, 600)
    rebalances: list[str] = []

    def member(instance: str) -> GroupMember:
        return GroupMember(broker.bootstrap, group, topic, instance, "classic",
                           **{"group.instance.id": instance, "session.timeout.ms": 30000,
                              "on_assign": lambda c, ps: rebalances.append(instance)})

    a, b = member("s1"), member("s2")
    try:
        wait_until(lambda: a.assignment() and b.assignment()
                   and len(a.assignment() | b.assignment()) == PARTITIONS, 30, "a stable group")
        before_a, before_b = a.assignment(), b.assignment()
        b_rebalances = rebalances.count("s2")
        a.close()
        a2 = member("s1")
        wait_until(lambda: a2.assignment(), 30, "the restarted member to get its partitions")
        assert a2.assignment() == before_a
        time.sleep(2)
        assert b.assignment() == before_b
        assert rebalances.count("s2") == b_rebalances, "the other member was not rebalanced"
        a2.close()
    finally:
        for m in (a, b):
            if m.thread.is_alive():
                m.close()
