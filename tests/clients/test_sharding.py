"""Requests that span shards (DESIGN.md, Shape of the process).

On a 2-shard broker the partitions of one topic are owned by both shards. A
client knows nothing of shards: kafka-python puts the batches of every
partition led by one broker into a single Produce request, and fetches all
its assigned partitions with one Fetch request. The connection's shard has to
split such a request by owner, and merge the answers back in order.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from kafka_python_io import create_topic

TOPIC = "spread"
PARTITIONS = 8
ROUNDS = 5
PER_PARTITION = 40


def wait_for_hwms(broker, topic: str, partitions: int, want: int | None = None, timeout: float = 10):
    """{partition: (shard, hwm)} once /metrics lists every partition (with
    high watermark `want`, if given)."""
    deadline = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < deadline:
        seen = {p: v for (t, p), v in broker.partition_hwms().items() if t == topic}
        if len(seen) == partitions and (want is None or all(h == want for _, h in seen.values())):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"/metrics never showed {partitions} partitions of {topic!r}"
                         f"{'' if want is None else f' at high watermark {want}'}: {seen}")


def test_one_produce_request_spanning_both_shards(broker):
    """Metrics show the 8 partitions split between shard 0 and shard 1. One
    kafka-python producer sends 40 records to every partition and flushes, so
    one Produce request carries all 8 partitions; five such rounds. Every
    record is acknowledged at the next offset of its partition, both shards
    appended, and a single consumer (one Fetch spanning both shards) reads
    every record back in order. The partition-to-shard placement survives a
    restart."""
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    placement = wait_for_hwms(broker, TOPIC, PARTITIONS)
    shards = {shard for shard, _ in placement.values()}
    assert shards == {0, 1}, f"partitions of {TOPIC} are all on shard(s) {shards}: {placement}"

    records_before = broker.per_shard("sluice_produced_records_total")
    hops_before = sum(broker.per_shard("sluice_cross_shard_calls_total").values())

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=60_000,
                             batch_size=1024 * 1024, acks="all", enable_idempotence=False)
    acks = {p: [] for p in range(PARTITIONS)}
    try:
        for round_ in range(ROUNDS):
            futures = []
            for i in range(PER_PARTITION):
                for p in range(PARTITIONS):
                    value = b"round-%d-partition-%d-record-%d" % (round_, p, i)
                    futures.append((p, value, producer.send(TOPIC, value=value, partition=p)))
            producer.flush(timeout=30)   # linger is a minute: flush sends all 8 partitions at once
            for p, value, future in futures:
                meta = future.get(timeout=10)
                assert meta.partition == p
                acks[p].append((meta.offset, value))
    finally:
        producer.close(timeout=5)

    for p, got in acks.items():
        assert [o for o, _ in got] == list(range(ROUNDS * PER_PARTITION)), (
            f"partition {p} (shard {placement[p][0]}): acknowledged offsets {[o for o, _ in got][:12]}...")

    total = ROUNDS * PER_PARTITION
    after = wait_for_hwms(broker, TOPIC, PARTITIONS, want=total)
    appended = {shard: sum(h for s, h in after.values() if s == shard) for shard in (0, 1)}
    assert all(appended.values()), f"high watermarks per shard: {appended}"
    records_after = broker.per_shard("sluice_produced_records_total")
    grew = {s: records_after.get(s, 0) - records_before.get(s, 0) for s in (0, 1)}
    assert grew == appended, f"records appended per shard {grew}, high watermarks per shard {appended}"
    hops = sum(broker.per_shard("sluice_cross_shard_calls_total").values()) - hops_before
    assert hops > 0, "requests for partitions of both shards made no cross-shard call"

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=100)
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    got = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning()
        deadline = time.monotonic() + 30
        while sum(map(len, got.values())) < PARTITIONS * total and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                got[tp.partition] += [(m.offset, m.value) for m in batch]
    finally:
        consumer.close()
    for p in range(PARTITIONS):
        assert got[p] == acks[p], f"partition {p}: read back {len(got[p])} records, {total} acknowledged"

    broker.restart()
    again = wait_for_hwms(broker, TOPIC, PARTITIONS, want=total)
    assert {p: s for p, (s, _) in again.items()} == {p: s for p, (s, _) in placement.items()}, (
        "partition placement changed across a restart")


@pytest.mark.parametrize("shards", [1, 2])
def test_partitions_spread_over_shards(broker_factory, shards):
    """Every partition has exactly one owner shard, and with more partitions
    than shards every shard owns some."""
    broker = broker_factory(shards=shards)
    create_topic(broker.bootstrap, "owners", 16)
    placement = wait_for_hwms(broker, "owners", 16)
    assert {s for s, _ in placement.values()} == set(range(shards)), placement
