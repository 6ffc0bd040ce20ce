"""The share group admin APIs (KIP-932) against the real binary with 2 shards.

confluent-kafka 2.16.1's AdminClient has no call for ShareGroupDescribe (77) or the
share group offsets (90-92), and its ConsumerGroupType has no SHARE for ListGroups'
type filter, so those requests are sent as raw frames (`wire.py`); the members are real
`ShareConsumer`s. Each test is an operator's story: look at who is in a share group,
where it stands, move it back, forget where it was, tell share groups from consumer
groups, delete one.
"""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

import rdkafka_io
import wire
from test_share import consume, poll_records, produce, set_group_configs, share_consumer, unique

API_DESCRIBE_GROUPS, API_LIST_GROUPS = 15, 16
API_SHARE_GROUP_DESCRIBE = 77
API_DESCRIBE_SHARE_OFFSETS, API_ALTER_SHARE_OFFSETS, API_DELETE_SHARE_OFFSETS = 90, 91, 92
NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND = 68, 69
DEADLINE_S = 30


def strings(values: list[str]) -> bytes:
    return wire.compact_array([wire.compact_string(v) for v in values])


# --- ShareGroupDescribe v1 -----------------------------------------------------------

def _topic_partitions(r: wire.Reader) -> tuple[str, list[int]]:
    r.uuid()
    tp = (r.string(), r.array(wire.Reader.i32))
    r.tags()
    return tp


def _share_member(r: wire.Reader) -> dict:
    m = {"member_id": r.string(), "rack_id": r.string(), "epoch": r.i32(),
         "client_id": r.string(), "client_host": r.string(),
         "subscribed": r.array(wire.Reader.string)}
    m["assignment"] = dict(r.array(_topic_partitions))
    r.tags()  # Assignment
    r.tags()
    return m


def _share_group(r: wire.Reader) -> dict:
    g = {"error": r.i16(), "message": r.string(), "group": r.string(), "state": r.string(),
         "epoch": r.i32(), "assignment_epoch": r.i32(), "assignor": r.string(),
         "members": r.array(_share_member)}
    r.i32()  # authorized operations
    r.tags()
    return g


def share_group_describe(port: int, group: str) -> dict:
    r = wire.call(port, API_SHARE_GROUP_DESCRIBE, 1, strings([group]) + b"\x00" + wire.TAGS)
    r.i32()
    groups = r.array(_share_group)
    r.tags()
    r.done()
    assert [g["group"] for g in groups] == [group], groups
    return groups[0]


# --- Describe/Alter/DeleteShareGroupOffsets v0 ---------------------------------------

def _offset_partition(r: wire.Reader) -> tuple[int, tuple[int, int]]:
    p, start, _epoch, error = r.i32(), r.i64(), r.i32(), r.i16()
    r.string()
    r.tags()
    return p, (start, error)


def _offset_topic(r: wire.Reader) -> tuple[str, dict]:
    name = r.string()
    r.uuid()
    parts = dict(r.array(_offset_partition))
    r.tags()
    return name, parts


def describe_share_offsets(port: int, group: str) -> dict[tuple[str, int], tuple[int, int]]:
    """{(topic, partition): (start offset, error)} of every share partition of `group`."""
    body = wire.compact_array([wire.compact_string(group) + wire.compact_array(None) + wire.TAGS])
    r = wire.call(port, API_DESCRIBE_SHARE_OFFSETS, 0, body + wire.TAGS)
    r.i32()

    def one_group(r):
        g = (r.string(), r.array(_offset_topic), r.i16(), r.string())
        r.tags()
        return g

    groups = r.array(one_group)
    r.tags()
    r.done()
    assert len(groups) == 1 and groups[0][0] == group and groups[0][2] == 0, groups
    return {(t, p): v for t, parts in groups[0][1] for p, v in parts.items()}


def alter_share_offsets(port: int, group: str, topic: str, starts: dict[int, int]):
    """(top-level error, {partition: error})."""
    parts = [struct.pack(">iq", p, s) + wire.TAGS for p, s in starts.items()]
    topics = wire.compact_array([wire.compact_string(topic) + wire.compact_array(parts) + wire.TAGS])
    r = wire.call(port, API_ALTER_SHARE_OFFSETS, 0, wire.compact_string(group) + topics + wire.TAGS)
    r.i32()
    error, _message = r.i16(), r.string()

    def partition(r):
        p, e = r.i32(), r.i16()
        r.string()
        r.tags()
        return p, e

    def one_topic(r):
        name = r.string()
        r.uuid()
        ps = dict(r.array(partition))
        r.tags()
        return name, ps

    responses = dict(r.array(one_topic))
    r.tags()
    r.done()
    return error, responses.get(topic, {})


def delete_share_offsets(port: int, group: str, topic: str):
    """(top-level error, {topic: error})."""
    topics = wire.compact_array([wire.compact_string(topic) + wire.TAGS])
    r = wire.call(port, API_DELETE_SHARE_OFFSETS, 0, wire.compact_string(group) + topics + wire.TAGS)
    r.i32()
    error, _message = r.i16(), r.string()

    def one_topic(r):
        name = r.string()
        r.uuid()
        t = (name, r.i16())
        r.string()
        r.tags()
        return t

    responses = dict(r.array(one_topic))
    r.tags()
    r.done()
    return error, responses


# --- ListGroups v5, DescribeGroups v5 --------------------------------------------------

def list_groups(port: int, types: list[str] = (), states: list[str] = ()) -> dict[str, tuple]:
    """{group: (protocol type, state, group type)}."""
    r = wire.call(port, API_LIST_GROUPS, 5, strings(list(states)) + strings(list(types)) + wire.TAGS)
    r.i32()
    assert r.i16() == 0

    def one(r):
        g = (r.string(), (r.string(), r.string(), r.string()))
        r.tags()
        return g

    groups = dict(r.array(one))
    r.tags()
    r.done()
    return groups


def describe_groups(port: int, group: str) -> dict:
    r = wire.call(port, API_DESCRIBE_GROUPS, 5, strings([group]) + b"\x00" + wire.TAGS)
    r.i32()

    def member(r):
        m = {"member_id": r.string(), "instance_id": r.string(), "client_id": r.string(),
             "client_host": r.string(), "metadata": r.bytes_(), "assignment": r.bytes_()}
        r.tags()
        return m

    def one(r):
        g = {"error": r.i16(), "group": r.string(), "state": r.string(),
             "protocol_type": r.string(), "protocol": r.string(), "members": r.array(member)}
        r.i32()
        r.tags()
        return g

    groups = r.array(one)
    r.tags()
    r.done()
    assert [g["group"] for g in groups] == [group], groups
    return groups[0]


# --- helpers -------------------------------------------------------------------------

def wait_for(what: str, check, consumers=(), deadline_s: float = DEADLINE_S):
    """Poll `consumers` (so they heartbeat) until `check()` returns something truthy."""
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        for c in consumers:
            assert poll_records(c, 0.1) == []
        if not consumers:
            time.sleep(0.1)


def members(port: int, group: str, n: int, consumers=()) -> dict:
    def check():
        d = share_group_describe(port, group)
        return d if d["error"] == 0 and len(d["members"]) == n else None
    return wait_for(f"{n} members in {group}", check, consumers)


def fresh(broker, partitions: int = 1, values: int = 10) -> tuple[str, str]:
    """A topic with `values` records on partition 0, and a share group starting at earliest."""
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(broker.bootstrap, topic, [b"v%d" % i for i in range(values)])
    return topic, group


# --- the stories ---------------------------------------------------------------------

def test_share_group_describe_shows_each_member_with_every_partition_assigned(broker):
    topic, group = unique("q"), unique("g")
    rdkafka_io.create_topic(broker.bootstrap, topic, 3)
    cs = [share_consumer(broker.bootstrap, group, topic, **{"client.id": f"worker-{i}"})
          for i in range(2)]
    d = members(broker.port, group, 2, cs)
    assert (d["state"], d["assignor"], d["message"]) == ("Stable", "simple", None)
    assert sorted(m["client_id"] for m in d["members"]) == ["worker-0", "worker-1"]
    for m in d["members"]:
        assert m["subscribed"] == [topic]
        # Members of a share group share partitions: each has all three.
        assert m["assignment"] == {topic: [0, 1, 2]}, m
        assert 0 < m["epoch"] <= d["epoch"]
        assert m["client_host"].startswith("/127.0.0.1") or m["client_host"] == "127.0.0.1", m
    assert len({m["member_id"] for m in d["members"]}) == 2
    for c in cs:
        c.close()
    empty = members(broker.port, group, 0)
    assert empty["state"] == "Empty"
    nobody = share_group_describe(broker.port, unique("nobody"))
    assert nobody["error"] == GROUP_ID_NOT_FOUND and nobody["members"] == []


def test_describe_share_group_offsets_gives_the_start_offset_after_records_are_accepted(broker):
    topic, group = fresh(broker, partitions=2, values=10)
    c = share_consumer(broker.bootstrap, group, topic)
    assert len(consume(c, 10)) == 10
    offsets = describe_share_offsets(broker.port, group)
    c.close()
    # Partition 0: all ten accepted, the share partition starts after them. Partition 1
    # (empty) was started at its earliest offset, 0, by the first ShareFetch.
    assert offsets == {(topic, 0): (10, 0), (topic, 1): (0, 0)}, offsets
    assert describe_share_offsets(broker.port, unique("nobody")) == {}


def test_alter_share_group_offsets_is_refused_while_members_are_active_and_moves_an_empty_group(broker):
    topic, group = fresh(broker, values=10)
    c = share_consumer(broker.bootstrap, group, topic)
    assert len(consume(c, 10)) == 10
    # Kafka: ShareGroup.validateOffsetsAlterable -> NON_EMPTY_GROUP while not Empty.
    assert alter_share_offsets(broker.port, group, topic, {0: 3}) == (NON_EMPTY_GROUP, {})
    assert describe_share_offsets(broker.port, group)[(topic, 0)] == (10, 0)
    c.close()
    members(broker.port, group, 0)
    assert alter_share_offsets(broker.port, group, topic, {0: 3}) == (0, {0: 0})
    assert describe_share_offsets(broker.port, group)[(topic, 0)] == (3, 0)
    c2 = share_consumer(broker.bootstrap, group, topic)
    seen = consume(c2, 7)
    c2.close()
    assert sorted(seen) == [(o, b"v%d" % o, 1) for o in range(3, 10)], seen


def test_delete_share_group_offsets_restarts_the_group_per_share_auto_offset_reset(broker):
    topic, group = fresh(broker, values=10)
    c = share_consumer(broker.bootstrap, group, topic)
    assert len(consume(c, 10)) == 10
    assert delete_share_offsets(broker.port, group, topic) == (NON_EMPTY_GROUP, {})
    c.close()
    members(broker.port, group, 0)
    assert delete_share_offsets(broker.port, group, topic) == (0, {topic: 0})
    assert describe_share_offsets(broker.port, group) == {}
    # earliest: everything again, from the log start offset.
    c = share_consumer(broker.bootstrap, group, topic)
    assert sorted(o for o, _, _ in consume(c, 10)) == list(range(10))
    c.close()
    members(broker.port, group, 0)
    # latest: only what is produced after the group starts again.
    set_group_configs(broker.bootstrap, group, {"share.auto.offset.reset": "latest"})
    assert delete_share_offsets(broker.port, group, topic) == (0, {topic: 0})
    c = share_consumer(broker.bootstrap, group, topic)
    wait_for("the share partition to start again",
             lambda: describe_share_offsets(broker.port, group).get((topic, 0)), [c])
    assert describe_share_offsets(broker.port, group)[(topic, 0)] == (10, 0)
    produce(broker.bootstrap, topic, [b"new"])
    seen = consume(c, 1)
    c.close()
    assert seen == [(10, b"new", 1)]
    missing = unique("missing")
    assert delete_share_offsets(broker.port, group, missing) == (0, {missing: 3})


def test_list_groups_tells_share_groups_from_consumer_groups(broker):
    topic = unique("q")
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    share, kip848 = unique("share"), unique("consumer")
    s = share_consumer(broker.bootstrap, share, topic)
    members(broker.port, share, 1, [s])
    k = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": kip848,
                  "group.protocol": "consumer"})
    k.subscribe([topic])

    def both_listed():
        k.poll(0.1)
        all_groups = list_groups(broker.port)
        return all_groups if {share, kip848} <= set(all_groups) and \
            all_groups[kip848][1] == "Stable" else None

    everything = wait_for("both groups listed and Stable", both_listed, [s])
    # Kafka lists a share group with protocol type "share" and type "share".
    assert everything[share] == ("share", "Stable", "share")
    assert everything[kip848] == ("consumer", "Stable", "consumer")
    only_share = list_groups(broker.port, types=["share"])
    assert share in only_share and kip848 not in only_share
    assert all(t == "share" for _, _, t in only_share.values())
    only_consumer = list_groups(broker.port, types=["consumer"])
    assert kip848 in only_consumer and share not in only_consumer
    assert share not in list_groups(broker.port, types=["share"], states=["Empty"])
    k.close()
    s.close()
    members(broker.port, share, 0)
    assert list_groups(broker.port, types=["share"], states=["Empty"])[share][1] == "Empty"


def test_describe_groups_and_delete_groups_on_a_share_group(broker):
    topic, group = fresh(broker, values=3)
    c = share_consumer(broker.bootstrap, group, topic, **{"client.id": "the-worker"})
    assert len(consume(c, 3)) == 3
    d = describe_groups(broker.port, group)
    # Sluice describes a share group in DescribeGroups (Kafka 4.1 answers Dead below v6,
    # GROUP_ID_NOT_FOUND at v6: docs/kafka-compat.md).
    assert (d["error"], d["state"], d["protocol_type"]) == (0, "Stable", "share"), d
    assert [m["client_id"] for m in d["members"]] == ["the-worker"]
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    with pytest.raises(KafkaException) as err:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert err.value.args[0].code() == NON_EMPTY_GROUP
    c.close()
    members(broker.port, group, 0)
    assert describe_groups(broker.port, group)["state"] == "Empty"
    admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert share_group_describe(broker.port, group)["error"] == GROUP_ID_NOT_FOUND
    assert describe_share_offsets(broker.port, group) == {}
    assert group not in list_groups(broker.port)
    assert describe_groups(broker.port, group)["state"] == "Dead"
    with pytest.raises(KafkaException) as err:
        admin.delete_consumer_groups([group], request_timeout=15)[group].result(timeout=20)
    assert err.value.args[0].code() == GROUP_ID_NOT_FOUND
