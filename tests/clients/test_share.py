"""Share groups (KIP-932, "queues for Kafka") with confluent-kafka's ShareConsumer
(librdkafka 2.16) against the real binary with 2 shards.

Each test is a user's story: competing consumers on one partition, a RELEASE that
comes back, a poison record that stops at the delivery limit, a consumer that dies
holding records, a broker SIGKILLed after acks, two groups that each see everything.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid

from confluent_kafka import AcknowledgeType, Producer, ShareConsumer, TopicCollection
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)

import rdkafka_io
import wire
from conftest import cpu_seconds

DEADLINE_S = 60


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def set_group_configs(bootstrap: str, group: str, configs: dict[str, str]) -> None:
    """IncrementalAlterConfigs on resource type GROUP (KIP-932 group configs)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for fut in admin.incremental_alter_configs([res], request_timeout=15).values():
        fut.result(timeout=20)


def produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    errors = []
    for v in values:
        p.produce(topic, value=v, partition=partition,
                  on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(30) == 0
    assert not errors, errors


def share_consumer(bootstrap: str, group: str, topic: str, **extra) -> ShareConsumer:
    config = {"bootstrap.servers": bootstrap, "group.id": group,
              "share.acknowledgement.mode": "explicit"}
    config.update(extra)
    c = ShareConsumer(config)
    c.subscribe([topic])
    return c


def poll_records(c: ShareConsumer, timeout: float = 1.0) -> list:
    out = []
    for m in c.poll(timeout):
        assert m.error() is None, m.error()
        out.append(m)
    return out


def consume(c: ShareConsumer, want: int, decide=lambda m: AcknowledgeType.ACCEPT,
            deadline_s: float = DEADLINE_S) -> list[tuple[int, bytes, int]]:
    """Poll, acknowledge each record as `decide` says, until `want` records were
    accepted; returns every delivery (offset, value, delivery count)."""
    seen, accepted = [], 0
    deadline = time.monotonic() + deadline_s
    while accepted < want:
        assert time.monotonic() < deadline, f"only {accepted} of {want} accepted: {seen}"
        for m in poll_records(c):
            seen.append((m.offset(), m.value(), m.delivery_count()))
            t = decide(m)
            c.acknowledge(m, t)
            accepted += t == AcknowledgeType.ACCEPT
    c.commit_sync(30)
    return seen


def test_three_consumers_share_one_partition_and_every_record_is_accepted_once(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    total = 300
    accepted: dict[bytes, list[str]] = {}
    per_consumer: dict[str, int] = {}
    lock = threading.Lock()
    started = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            c = share_consumer(broker.bootstrap, group, topic, **{"max.poll.records": 10})
            poll_records(c, 0.5)
            started.wait(30)
            deadline = time.monotonic() + DEADLINE_S
            while True:
                with lock:
                    if len(accepted) >= total:
                        break
                assert time.monotonic() < deadline, "records stopped coming"
                batch = poll_records(c)
                for m in batch:
                    c.acknowledge(m, AcknowledgeType.ACCEPT)
                if batch:
                    c.commit_sync(30)
                with lock:
                    for m in batch:
                        accepted.setdefault(m.value(), []).append(name)
                    per_consumer[name] = per_consumer.get(name, 0) + len(batch)
                # A worker's work takes time: the others get their turn meanwhile.
                time.sleep(0.02 if batch else 0)
            c.close()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"c{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    started.wait(30)
    produce(broker.bootstrap, topic, [b"job-%d" % i for i in range(total)])
    for t in threads:
        t.join(DEADLINE_S + 30)
    assert not errors, errors
    assert sorted(accepted) == sorted(b"job-%d" % i for i in range(total))
    assert all(len(by) == 1 for by in accepted.values()), \
        {v: by for v, by in accepted.items() if len(by) > 1}
    assert len(per_consumer) == 3 and all(n > 0 for n in per_consumer.values()), per_consumer


def test_a_released_record_comes_back_with_delivery_count_two(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"once-more"])
    c = share_consumer(broker.bootstrap, group, topic)
    first = True

    def decide(m):
        nonlocal first
        if first:
            first = False
            return AcknowledgeType.RELEASE
        return AcknowledgeType.ACCEPT

    seen = consume(c, 1, decide)
    c.close()
    assert seen == [(0, b"once-more", 1), (0, b"once-more", 2)]


def test_a_record_released_every_time_stops_at_the_delivery_limit(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest",
                                                "share.delivery.count.limit": "3"})
    produce(broker.bootstrap, topic, [b"poison"])
    c = share_consumer(broker.bootstrap, group, topic)
    deliveries = []
    deadline = time.monotonic() + DEADLINE_S
    while len(deliveries) < 3:
        assert time.monotonic() < deadline, deliveries
        for m in poll_records(c):
            deliveries.append(m.delivery_count())
            c.acknowledge(m, AcknowledgeType.RELEASE)
    c.commit_sync(30)
    # The third release archived it: the next record is the only one to come.
    produce(broker.bootstrap, topic, [b"healthy"])
    seen = consume(c, 1)
    c.close()
    assert deliveries == [1, 2, 3]
    assert seen == [(1, b"healthy", 1)]
    hits = broker.metric("sluice_share_delivery_limit_hits_total")
    assert sum(v for k, v in hits.items() if ("group", group) in k) == 1, hits


DYING_CONSUMER = textwrap.dedent("""
    import os, signal, sys
    from confluent_kafka import ShareConsumer
    c = ShareConsumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                       "share.acknowledgement.mode": "explicit", "max.poll.records": 5})
    c.subscribe([sys.argv[3]])
    while True:
        got = [m for m in c.poll(1.0) if m.error() is None]
        if got:
            print(" ".join(str(m.offset()) for m in got), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_consumer_that_dies_holding_records_loses_none(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest",
                                                "share.record.lock.duration.ms": "2000"})
    produce(broker.bootstrap, topic, [b"r%d" % i for i in range(20)])
    dying = subprocess.run([sys.executable, "-c", DYING_CONSUMER, broker.bootstrap, group, topic],
                           capture_output=True, timeout=DEADLINE_S, text=True)
    assert dying.returncode == -signal.SIGKILL, dying.stderr
    held = {int(o) for o in dying.stdout.split()}
    assert held, dying.stdout
    c = share_consumer(broker.bootstrap, group, topic)
    seen = consume(c, 20)
    c.close()
    assert sorted(v for _, v, _ in seen) == sorted(b"r%d" % i for i in range(20))
    counts = {o: n for o, _, n in seen}
    assert all(counts[o] == 2 for o in held), (held, counts)
    assert all(n == 1 for o, n in counts.items() if o not in held), counts


def test_accepted_records_stay_accepted_across_sigkill(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"r%d" % i for i in range(100)])
    c = share_consumer(broker.bootstrap, group, topic, **{"max.poll.records": 10})
    accepted = [o for o, _, _ in consume(c, 50)]
    held = [m.offset() for m in poll_records(c, 5.0)]   # acquired, never acknowledged
    assert held and not set(held) & set(accepted)
    broker.restart(kill=True)
    c2 = share_consumer(broker.bootstrap, group + "", topic)
    seen = consume(c2, 50)
    c2.close()
    offsets = sorted(o for o, _, _ in seen)
    assert offsets == sorted(set(range(100)) - set(accepted)), offsets
    assert set(held) <= set(offsets)
    threading.Thread(target=c.close, daemon=True).start()


def test_two_share_groups_each_get_every_record(broker):
    topic = unique("q")
    rdkafka_io.create_topic(broker.bootstrap, topic, 2)
    groups = [unique("ga"), unique("gb")]
    for g in groups:
        set_group_configs(broker.bootstrap, g, {"share.auto.offset.reset": "earliest"})
    values = [b"v%d" % i for i in range(40)]
    produce(broker.bootstrap, topic, values[:20], partition=0)
    produce(broker.bootstrap, topic, values[20:], partition=1)
    for g in groups:
        c = share_consumer(broker.bootstrap, g, topic)
        seen = consume(c, 40)
        c.close()
        assert sorted(v for _, v, _ in seen) == sorted(values)


def test_a_recreated_topic_starts_its_share_groups_afresh(broker):
    """A share group read 30 records of a topic; the topic is deleted and created again
    with 5 new records: the group gets those 5 from offset 0, not nothing until the new
    log passes offset 30."""
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"old%d" % i for i in range(30)])
    c = share_consumer(broker.bootstrap, group, topic)
    assert len(consume(c, 30)) == 30
    c.close()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for fut in admin.delete_topics([topic], request_timeout=15).values():
        fut.result(timeout=20)
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    produce(broker.bootstrap, topic, [b"new%d" % i for i in range(5)])
    c = share_consumer(broker.bootstrap, group, topic)
    seen = consume(c, 5)
    c.close()
    assert sorted((o, v) for o, v, _ in seen) == [(i, b"new%d" % i) for i in range(5)]


def test_bad_group_config_values_are_refused_with_the_reason(broker):
    import pytest
    from confluent_kafka import KafkaException
    with pytest.raises(KafkaException) as err:
        set_group_configs(broker.bootstrap, unique("g"), {"share.record.lock.duration.ms": "soon"})
    assert err.value.args[0].code() == 40 and "integer" in err.value.args[0].str()
    with pytest.raises(KafkaException) as err:
        set_group_configs(broker.bootstrap, unique("g"),
                          {"errors.deadletterqueue.topic.name": "errors"})
    assert err.value.args[0].code() == 40 and "dlq." in err.value.args[0].str()


def read_topic(bootstrap: str, topic: str, count: int) -> list:
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("reader"),
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + DEADLINE_S
    while len(out) < count:
        assert time.monotonic() < deadline, out
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            out.append(m)
    c.close()
    return out


def dlq_setup(broker, limit: str = "2"):
    topic, group = unique("q"), unique("g")
    dlq = "dlq." + topic
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    rdkafka_io.create_topic(broker.bootstrap, dlq, 1,
                            config={"errors.deadletterqueue.group.enable": "true"})
    set_group_configs(broker.bootstrap, group, {
        "share.auto.offset.reset": "earliest",
        "share.delivery.count.limit": limit,
        "errors.deadletterqueue.topic.name": dlq,
        "errors.deadletterqueue.copy.record.enable": "true",
    })
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for k in (b"bad", b"flaky", b"ok"):
        p.produce(topic, key=b"k-" + k, value=k, partition=0, headers=[("trace", b"t-" + k)])
    assert p.flush(30) == 0
    return topic, group, dlq


def reject_bad_release_flaky(c: ShareConsumer, flaky_deliveries: int) -> list:
    seen, deadline = [], time.monotonic() + DEADLINE_S
    while not ({b"bad", b"ok"} <= {v for v, _ in seen}
               and sum(v == b"flaky" for v, _ in seen) >= flaky_deliveries):
        assert time.monotonic() < deadline, seen
        for m in poll_records(c):
            seen.append((m.value(), m.delivery_count()))
            c.acknowledge(m, {b"bad": AcknowledgeType.REJECT,
                              b"flaky": AcknowledgeType.RELEASE}.get(m.value(),
                                                                    AcknowledgeType.ACCEPT))
    c.commit_sync(30)
    return seen


def test_rejected_and_delivery_limit_records_land_in_the_dlq_with_their_headers(broker):
    topic, group, dlq = dlq_setup(broker)
    c = share_consumer(broker.bootstrap, group, topic)
    reject_bad_release_flaky(c, 2)
    c.close()
    dead = read_topic(broker.bootstrap, dlq, 2)
    by_value = {m.value(): (m.key(), dict(m.headers())) for m in dead}
    assert set(by_value) == {b"bad", b"flaky"}
    key, h = by_value[b"bad"]
    assert key == b"k-bad" and h["trace"] == b"t-bad"
    assert h["__dlq.errors.topic"] == topic.encode() and h["__dlq.errors.partition"] == b"0"
    assert h["__dlq.errors.offset"] == b"0" and h["__dlq.errors.group.id"] == group.encode()
    assert h["__dlq.errors.delivery.count"] == b"1" and h["__dlq.errors.reason"] == b"REJECTED"
    key, h = by_value[b"flaky"]
    assert h["__dlq.errors.offset"] == b"1" and h["__dlq.errors.delivery.count"] == b"2"
    assert h["__dlq.errors.reason"] == b"DELIVERY_COUNT_LIMIT"
    assert sum(broker.per_shard("sluice_share_dlq_writes_total").values()) == 2
    # The console's share view names the group's DLQ topic and how many records wait there.
    with urllib.request.urlopen(f"http://{broker.admin_addr}/api/shares", timeout=10) as r:
        rows = [s for s in json.loads(r.read())["shares"] if s["group"] == group]
    assert [(s["topic"], s["dlq_topic"], s["dlq_depth"]) for s in rows] == [(topic, dlq, 2)]


def test_redrive_puts_dlq_records_back_and_they_are_delivered_again(broker, sluice_bin):
    topic, group, dlq = dlq_setup(broker)
    c = share_consumer(broker.bootstrap, group, topic)
    reject_bad_release_flaky(c, 2)
    read_topic(broker.bootstrap, dlq, 2)
    out = subprocess.run([sluice_bin, "redrive", "--bootstrap", broker.bootstrap, "--dlq", dlq],
                         capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 0, out.stderr
    assert "moved 2" in out.stdout and f"{topic}: 2" in out.stdout, out.stdout
    again = consume(c, 2)
    c.close()
    assert sorted(v for _, v, _ in again) == [b"bad", b"flaky"]
    assert all(o >= 3 and n == 1 for o, _, n in again), again


def test_delayed_delivery_holds_a_record_back_for_the_topic_delay(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1, config={"sluice.delivery.delay.ms": "1500"})
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    c = share_consumer(broker.bootstrap, group, topic)
    poll_records(c, 0.5)
    sent = time.time()
    produce(broker.bootstrap, topic, [b"later"])
    seen = consume(c, 1)
    got = time.time()
    c.close()
    assert seen == [(0, b"later", 1)]
    assert got - sent >= 1.5 - 0.05   # the record's timestamp is taken after `sent`


def test_redelivery_backoff_holds_a_released_record_back(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest",
                                                "sluice.share.redelivery.backoff.ms": "1000"})
    produce(broker.bootstrap, topic, [b"retry-me"])
    c = share_consumer(broker.bootstrap, group, topic)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        assert time.monotonic() < deadline
        got = poll_records(c)
        if got:
            break
    released_at = time.monotonic()
    c.acknowledge(got[0], AcknowledgeType.RELEASE)
    c.commit_sync(30)
    again = consume(c, 1)
    back_at = time.monotonic()
    c.close()
    assert again == [(0, b"retry-me", 2)]
    assert back_at - released_at >= 1.0


def test_share_groups_are_listed_and_deleted_with_the_admin_client(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"x"])
    c = share_consumer(broker.bootstrap, group, topic)
    consume(c, 1)
    from test_share_admin import list_groups
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    # As with Kafka, ListGroups names it with protocol type "share", and librdkafka's
    # list_consumer_groups keeps only protocol types "consumer" and "": not there.
    assert list_groups(broker.port)[group] == ("share", "Stable", "share")
    listed = admin.list_consumer_groups().result(timeout=20)
    assert group not in {g.group_id for g in listed.valid}
    c.close()
    admin.delete_consumer_groups([group])[group].result(timeout=20)
    assert group not in list_groups(broker.port)


def test_a_read_committed_share_group_skips_aborted_transactions(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest",
                                                "share.isolation.level": "read_committed"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": unique("tx")})
    p.init_transactions(30)
    for value, commit in ((b"aborted", False), (b"committed", True)):
        p.begin_transaction()
        p.produce(topic, value=value, partition=0)
        p.flush(30)
        (p.commit_transaction if commit else p.abort_transaction)(30)
    c = share_consumer(broker.bootstrap, group, topic)
    seen = consume(c, 1)
    c.close()
    assert [v for _, v, _ in seen] == [b"committed"]


def test_one_share_fetch_reads_at_most_4_mib_of_a_partition(broker):
    """A backlog of 100 records of 100 KiB: librdkafka asks ShareFetch for 50 MiB and 500
    records, the broker reads (and copies) at most 4 MiB of the partition per fetch, so
    the first poll has at most 41 of them; every record still comes, once."""
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0,
                  "batch.size": 200_000})
    for i in range(100):
        p.produce(topic, value=b"%03d" % i + b"x" * (100 * 1024 - 3), partition=0)
        p.poll(0)
    assert p.flush(30) == 0
    c = share_consumer(broker.bootstrap, group, topic, **{"max.poll.records": 500})
    deadline = time.monotonic() + DEADLINE_S
    first = []
    while not first:
        assert time.monotonic() < deadline
        first = poll_records(c)
    assert 0 < len(first) <= 41, len(first)
    for m in first:
        c.acknowledge(m, AcknowledgeType.ACCEPT)
    rest = consume(c, 100 - len(first))
    c.close()
    values = sorted(m.value()[:3] for m in first) + sorted(v[:3] for _, v, _ in rest)
    assert sorted(values) == [b"%03d" % i for i in range(100)]


def test_a_member_waiting_on_a_full_window_does_not_spin_the_owner(broker):
    """Member A holds every lock of a share partition (share.partition.max.record.locks
    10) and sits on them; member B polls for 4 s and gets nothing, since the window is
    full and the log has more records behind it. B's ShareFetch must wait for an ack, a
    release or an expiry, not for an append the log already has: waiting on the append
    ended at once, and each fetch spun on the partition's owner until its 50 ms recheck,
    without yielding, which held that shard (its mesh messages waited 50-150 ms) and burnt
    a core for as long as B polled. The broker's CPU over B's 4 s stays far below one
    core-second; then A's acks free the window and B gets the next records."""
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest",
                                                "share.partition.max.record.locks": "10"})
    produce(broker.bootstrap, topic, [b"r%02d" % i for i in range(40)])
    a = share_consumer(broker.bootstrap, group, topic)
    held, deadline = [], time.monotonic() + DEADLINE_S
    while len(held) < 10:
        assert time.monotonic() < deadline, f"A acquired only {len(held)}"
        held += poll_records(a)
    assert len(held) == 10, [m.offset() for m in held]
    b = share_consumer(broker.bootstrap, group, topic)
    assert poll_records(b, 2.0) == []  # B joined, its fetches find the window full
    before = cpu_seconds(broker.proc.pid)
    got = []
    t_end = time.monotonic() + 4
    while time.monotonic() < t_end:
        got += poll_records(b, 0.5)
    used = cpu_seconds(broker.proc.pid) - before
    print(f"broker CPU while B waited on a full window for 4 s: {used:.2f} s")
    assert got == [], [m.offset() for m in got]
    assert used < 1.0, f"the broker used {used:.2f} CPU-s in 4 s while B waited"
    for m in held:
        a.acknowledge(m, AcknowledgeType.ACCEPT)
    a.commit_sync(30)
    later = consume(b, 10)
    assert sorted(o for o, _, _ in later)[:10] == list(range(10, 20)), later
    a.close()
    b.close()


def share_fetch_v1(correlation_id: int, group: str, member: str, topic_id: bytes,
                   max_wait_ms: int) -> bytes:
    """A ShareFetch v1 frame opening a share session (epoch 0) on partition 0."""
    partition = struct.pack(">i", 0) + wire.compact_array([]) + b"\x00"
    topic = topic_id + wire.compact_array([partition]) + b"\x00"
    body = (wire.compact_string(group) + wire.compact_string(member)
            + struct.pack(">iiiiii", 0, max_wait_ms, 1, 1 << 20, 500, 500)
            + wire.compact_array([topic]) + wire.compact_array([]) + b"\x00")
    return wire.frame(wire.header_v2(78, 1, correlation_id) + body)


def topic_id_of(bootstrap: str, topic: str) -> bytes:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(20)
    msb, lsb = desc.topic_id.get_most_significant_bits(), desc.topic_id.get_least_significant_bits()
    return struct.pack(">qq", msb, lsb)


def test_a_parked_share_fetch_answers_when_the_next_request_arrives_on_its_connection(broker):
    """Responses leave a connection in request order, so a ShareFetch parked for its
    max_wait_ms (nothing to acquire) would hold back whatever the client sends after it —
    for a share consumer, its own ShareAcknowledge (commit_sync waited behind its fetch).
    The fetch answers, empty, as soon as a later request arrives: here an ApiVersions
    0.5 s into a 10 s wait. Both answers come in order, long before the 10 s."""
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    topic_id = topic_id_of(broker.bootstrap, topic)
    with wire.connect(broker.port, timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(share_fetch_v1(1, group, uuid.uuid4().hex, topic_id, 10_000))
        time.sleep(0.5)
        sock.sendall(wire.api_versions_request(0, 2))
        first = wire.read_frame(sock)
        answered_s = time.monotonic() - started
        second = wire.read_frame(sock)
    assert struct.unpack_from(">i", first)[0] == 1
    assert struct.unpack_from(">i", second)[0] == 2
    assert answered_s < 5, f"the ShareFetch was answered after {answered_s:.1f} s"
