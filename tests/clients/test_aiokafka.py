"""aiokafka 0.14 against Sluice: an asyncio client with its own protocol code (a fork of
kafka-python's older codecs, its own producer, consumer, group coordinator and
transaction manager), the way an application using it would run (issue 12, "How it is
shown"). Admin, keyed produce in every codec with Java's partitioner, idempotent and
transactional producers, a two-member group rebalancing, offsets by timestamp, and a
topic deleted and created again.

Each test runs one asyncio program under a bound (`run`), on the `broker` fixture.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from workload import java_partition

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
BOUND_S = 120


def run(coro):
    """Run one test's program, failing it if it takes longer than BOUND_S."""
    return asyncio.run(asyncio.wait_for(coro, BOUND_S))


async def admin(broker) -> AIOKafkaAdminClient:
    a = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    await a.start()
    return a


async def create(broker, topic: str, partitions: int, config: dict | None = None) -> None:
    a = await admin(broker)
    try:
        await a.create_topics([NewTopic(topic, partitions, 1, topic_configs=config or {})])
    finally:
        await a.close()
    await wait_for_metadata(broker, topic, partitions)


async def wait_for_metadata(broker, topic: str, partitions: int) -> None:
    p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await p.start()
    try:
        for _ in range(100):
            if len(await p.partitions_for(topic) or ()) == partitions:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{topic} never showed {partitions} partitions")
    finally:
        await p.stop()


async def read_all(broker, topic: str, partitions: int, expect: int, **config) -> list:
    """Every record of `topic` from the beginning with assign(), until `expect` came."""
    c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                         auto_offset_reset="earliest", **config)
    await c.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(parts)
        await c.seek_to_beginning(*parts)
        got = []
        while len(got) < expect:
            batch = await c.getmany(timeout_ms=1000)
            got.extend(r for rs in batch.values() for r in rs)
            if not batch and len(got) >= expect:
                break
        # Nothing more arrives than expected.
        extra = await c.getmany(timeout_ms=300)
        got.extend(r for rs in extra.values() for r in rs)
        return got
    finally:
        await c.stop()


def test_admin_creates_describes_grows_and_deletes_topics(broker):
    """AIOKafkaAdminClient: CreateTopics with a config, DescribeConfigs showing it,
    CreatePartitions, DescribeCluster (one broker, the controller), list_topics,
    DeleteTopics."""
    async def main():
        a = await admin(broker)
        try:
            await a.create_topics([NewTopic("aio-admin", 2, 1,
                                            topic_configs={"retention.ms": "3600000"})])
            await wait_for_metadata(broker, "aio-admin", 2)
            [res] = await a.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "aio-admin")])
            configs = {c[0]: c[1] for c in res.resources[0][4]}
            assert configs["retention.ms"] == "3600000"
            await a.create_partitions({"aio-admin": NewPartitions(5)})
            await wait_for_metadata(broker, "aio-admin", 5)
            cluster = await a.describe_cluster()
            assert [b["node_id"] for b in cluster["brokers"]] == [1]
            assert cluster["controller_id"] == 1
            assert "aio-admin" in await a.list_topics()
            await a.delete_topics(["aio-admin"])
            for _ in range(100):
                if "aio-admin" not in await a.list_topics():
                    break
                await asyncio.sleep(0.1)
            assert "aio-admin" not in await a.list_topics()
        finally:
            await a.close()
    run(main())


def test_keyed_messages_in_every_codec_land_on_javas_partition_in_order(broker):
    """Five producers, one per codec (none, gzip, snappy, lz4, zstd), send 2,000 keyed
    messages each to a 6-partition topic: each key lands on murmur2(key) % 6 (aiokafka
    uses Java's partitioner), at the offset the producer was told, and a consumer reads
    every message back once, in order per key."""
    async def main():
        await create(broker, "aio-keys", 6)
        acked = {}
        for codec in CODECS:
            p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec,
                                 linger_ms=10)
            await p.start()
            try:
                futures = []
                for i in range(2000):
                    key = b"key-%d" % (i % 97)
                    value = b"%s|%s|%d" % (key, (codec or "none").encode(), i)
                    futures.append((key, value, await p.send("aio-keys", value, key=key)))
                for key, value, f in futures:
                    meta = await f
                    assert meta.partition == java_partition(key, 6), key
                    acked[value] = (meta.partition, meta.offset)
            finally:
                await p.stop()
        got = await read_all(broker, "aio-keys", 6, len(acked))
        assert sorted(r.value for r in got) == sorted(acked)
        assert {r.value: (r.partition, r.offset) for r in got} == acked
        per_key: dict[bytes, list[int]] = {}
        for r in sorted(got, key=lambda r: (r.partition, r.offset)):
            key, codec, i = r.value.split(b"|")
            per_key.setdefault(key + codec, []).append(int(i))
        assert all(seq == sorted(seq) for seq in per_key.values())
    run(main())


def test_idempotent_producer_writes_each_message_once(broker):
    """enable_idempotence=True: InitProducerId, sequenced batches; 3,000 messages
    are each in the log exactly once."""
    async def main():
        await create(broker, "aio-idem", 3)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True,
                             acks="all", linger_ms=5)
        await p.start()
        try:
            sent = [b"idem-%d" % i for i in range(3000)]
            futures = [await p.send("aio-idem", v, partition=i % 3) for i, v in enumerate(sent)]
            await asyncio.gather(*futures)
        finally:
            await p.stop()
        got = await read_all(broker, "aio-idem", 3, len(sent))
        assert sorted(r.value for r in got) == sorted(sent)
    run(main())


def test_transactions_commit_and_abort_for_read_committed_consumers(broker):
    """A transactional producer commits one transaction and aborts another (and
    sends offsets inside the committed one): a read_committed consumer gets exactly
    the committed records, a read_uncommitted one gets both; the group's offset is
    the one committed with the transaction."""
    async def main():
        await create(broker, "aio-txn", 2)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-t1")
        await p.start()
        try:
            async with p.transaction():
                for i in range(100):
                    await p.send("aio-txn", b"commit-%d" % i, partition=i % 2)
                await p.send_offsets_to_transaction(
                    {TopicPartition("aio-txn", 0): 42}, "aio-txn-group")
            await p.begin_transaction()
            for i in range(50):
                await p.send("aio-txn", b"abort-%d" % i, partition=i % 2)
            await p.abort_transaction()
        finally:
            await p.stop()
        committed = await read_all(broker, "aio-txn", 2, 100, isolation_level="read_committed")
        assert sorted(r.value for r in committed) == sorted(b"commit-%d" % i for i in range(100))
        everything = await read_all(broker, "aio-txn", 2, 150)
        assert len([r for r in everything if r.value.startswith(b"abort-")]) == 50
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="aio-txn-group")
        await c.start()
        try:
            assert await c.committed(TopicPartition("aio-txn", 0)) == 42
        finally:
            await c.stop()
    run(main())


def test_two_members_of_a_group_rebalance_and_share_every_message(broker):
    """One consumer of a group takes all 4 partitions; a second joins and the group
    rebalances to two each; messages produced afterwards reach exactly one member each,
    and every partition's committed offset ends at its high watermark."""
    async def main():
        await create(broker, "aio-group", 4)
        members = [AIOKafkaConsumer("aio-group", bootstrap_servers=broker.bootstrap,
                                    group_id="aio-g", auto_offset_reset="earliest",
                                    enable_auto_commit=False, heartbeat_interval_ms=500,
                                    session_timeout_ms=10000)
                   for _ in range(2)]
        await members[0].start()
        try:
            while len(members[0].assignment()) != 4:
                await members[0].getmany(timeout_ms=200)
            await members[1].start()
            while not (members[0].assignment() and members[1].assignment()
                       and len(members[0].assignment()) + len(members[1].assignment()) == 4):
                await asyncio.gather(*(m.getmany(timeout_ms=200) for m in members))
            assert {len(m.assignment()) for m in members} == {2}
            p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await p.start()
            try:
                for i in range(400):
                    await p.send("aio-group", b"g-%d" % i, partition=i % 4)
                await p.flush()
            finally:
                await p.stop()
            got: list[list] = [[], []]
            while sum(len(g) for g in got) < 400:
                for n, m in enumerate(members):
                    batch = await m.getmany(timeout_ms=200)
                    got[n].extend(r for rs in batch.values() for r in rs)
            for m in members:
                await m.commit()
            assert all(got), "each member got some of the messages"
            values = sorted(r.value for g in got for r in g)
            assert values == sorted(b"g-%d" % i for i in range(400))
            for m in members:
                for tp in m.assignment():
                    assert await m.committed(tp) == 100
        finally:
            for m in members:
                await m.stop()
    run(main())


def test_offsets_for_times_find_the_first_record_at_or_after_a_timestamp(broker):
    """Records with CreateTimes 1000, 2000, ... 10000 on one partition:
    offsets_for_times(2500) is the record of 3000; past the last is None."""
    async def main():
        await create(broker, "aio-times", 1)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
        await p.start()
        try:
            for i in range(10):
                await (await p.send("aio-times", b"t%d" % i, partition=0,
                                    timestamp_ms=(i + 1) * 1000))
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await c.start()
        try:
            tp = TopicPartition("aio-times", 0)
            found = await c.offsets_for_times({tp: 2500})
            assert (found[tp].offset, found[tp].timestamp) == (2, 3000)
            assert (await c.offsets_for_times({tp: 20_000}))[tp] is None
            assert await c.beginning_offsets([tp]) == {tp: 0}
            assert await c.end_offsets([tp]) == {tp: 10}
        finally:
            await c.stop()
    run(main())


def test_a_deleted_topic_created_again_starts_empty(broker):
    """Produce 20 records, delete the topic, create it again with another partition
    count: it has only what is produced after, from offset 0."""
    async def main():
        await create(broker, "aio-again", 2)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await p.start()
        try:
            for i in range(20):
                await p.send("aio-again", b"old-%d" % i, partition=i % 2)
            await p.flush()
        finally:
            await p.stop()
        a = await admin(broker)
        try:
            await a.delete_topics(["aio-again"])
            for _ in range(100):
                if "aio-again" not in await a.list_topics():
                    break
                await asyncio.sleep(0.1)
        finally:
            await a.close()
        await create(broker, "aio-again", 3)
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await p.start()
        try:
            metas = [await (await p.send("aio-again", b"new-%d" % i, partition=i % 3))
                     for i in range(6)]
        finally:
            await p.stop()
        assert sorted((m.partition, m.offset) for m in metas) == [
            (0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        got = await read_all(broker, "aio-again", 3, 6)
        assert sorted(r.value for r in got) == sorted(b"new-%d" % i for i in range(6))
    run(main())
