"""Topic `compression.type` (issue 12, item 9): an admin client that sets a codec on a
topic (a common setting) gets it, and the broker stores every batch in that codec —
recompressing, on the partition's owner, batches produced in another one — as Kafka
does. confluent-kafka (librdkafka 2.16) creates and alters the topics and produces in
every codec; a raw Fetch v4 shows the codec of each stored batch; confluent-kafka
and kafka-python read every record back.

Before this change CreateTopics with compression.type other than `producer` answered
INVALID_CONFIG, so every test here failed at its first step.
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic)

import rdkafka_io
import wire
from kafka_python_io import consume_all as kp_consume_all
from workload import Message, make_messages

PRODUCER_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {"uncompressed": 0, "none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def create(bootstrap: str, topics: dict[str, dict[str, str]]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(name, num_partitions=len(PRODUCER_CODECS), replication_factor=1,
                    config=config) for name, config in topics.items()]
    for name, future in admin.create_topics(new, request_timeout=15).items():
        future.result()  # raises on INVALID_CONFIG
    for name in topics:
        rdkafka_io.wait_for_partitions(bootstrap, name, len(PRODUCER_CODECS))


def produce_each_codec(bootstrap: str, topic: str, count: int, **config) -> list[Message]:
    """`count` messages in each producer codec, codec i into partition i, each
    partition's in one batch: the producer knows the partition before the first
    message (so none waits in librdkafka's unassigned queue, whose messages join the
    partition's later, as a batch of their own), the linger outlasts the loop and
    `flush` sends at once. (A tail batch of one random value is sent uncompressed:
    librdkafka does so when its codec would make a batch larger.)"""
    sent = []
    for p, codec in enumerate(PRODUCER_CODECS):
        msgs = make_messages(count, seed=p, start=p * count, tag=codec)
        conf = rdkafka_io.producer_config(bootstrap, compression_type=codec, linger_ms=10_000,
                                          **config)
        producer = rdkafka_io.Producer(conf)
        producer.list_topics(topic, timeout=15)
        for m in msgs:
            producer.produce(topic, key=m.key, value=m.value, partition=p)
            producer.poll(0)
        assert producer.flush(30) == 0
        sent.extend(msgs)
    return sent


def stored_batches(broker, topic: str) -> dict[int, list[dict]]:
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.fetch_v4_request(7, topic, {p: 0 for p in range(len(PRODUCER_CODECS))},
                                           partition_max_bytes=64 << 20))
        return wire.fetch_v4_batches(wire.read_frame(sock))


def stored_codecs(broker, topic: str) -> dict[int, set[int]]:
    """{partition: codec ids of its data batches} (control batches left out)."""
    return {p: {b["attributes"] & 7 for b in found if not b["attributes"] & 0x20}
            for p, found in stored_batches(broker, topic).items()}


def values(records) -> list[bytes]:
    return sorted(r.value for r in records)


TARGETS = {
    "uncompressed": {"compression.type": "uncompressed"},
    "gzip": {"compression.type": "gzip", "compression.gzip.level": "1"},
    "snappy": {"compression.type": "snappy"},
    "lz4": {"compression.type": "lz4", "compression.lz4.level": "12"},
    "zstd": {"compression.type": "zstd", "compression.zstd.level": "10"},
}


def test_every_topic_codec_stores_batches_of_every_producer_codec_in_it(broker):
    """Five topics, one per compression.type (with a codec level where Kafka has one),
    each fed by producers in all five codecs: every stored batch carries the topic's
    codec, and every record comes back byte for byte through confluent-kafka and
    kafka-python. DescribeConfigs shows the type and the level."""
    topics = {f"codec-{name}": config for name, config in TARGETS.items()}
    create(broker.bootstrap, topics)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for (name, config), topic in zip(TARGETS.items(), topics):
        sent = produce_each_codec(broker.bootstrap, topic, 300)
        codecs = stored_codecs(broker, topic)
        want = CODEC_IDS[name]
        assert codecs == {p: {want} for p in range(len(PRODUCER_CODECS))}, (topic, codecs)
        want_values = sorted(m.value for m in sent)
        assert values(rdkafka_io.consume_all(broker.bootstrap, topic,
                                             len(PRODUCER_CODECS))) == want_values
        assert values(kp_consume_all(broker.bootstrap, topic,
                                     len(PRODUCER_CODECS))) == want_values
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        described = admin.describe_configs([resource])[resource].result()
        for key, value in config.items():
            assert described[key].value == value, (topic, key)


def test_producer_keeps_the_producers_codec_and_an_altered_topic_switches(broker):
    """compression.type=producer (the default) stores each batch as produced; after
    IncrementalAlterConfigs sets zstd, new batches are stored as zstd and the old ones
    stay as they were."""
    create(broker.bootstrap, {"codec-switch": {}})
    produce_each_codec(broker.bootstrap, "codec-switch", 100)
    before = stored_codecs(broker, "codec-switch")
    assert before == {p: {CODEC_IDS[c]} for p, c in enumerate(PRODUCER_CODECS)}
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "codec-switch", incremental_configs=[
        ConfigEntry("compression.type", "zstd", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result()
    sent = produce_each_codec(broker.bootstrap, "codec-switch", 100)
    after = stored_codecs(broker, "codec-switch")
    assert after == {p: {CODEC_IDS[c], 4} for p, c in enumerate(PRODUCER_CODECS)}
    got = values(rdkafka_io.consume_all(broker.bootstrap, "codec-switch", len(PRODUCER_CODECS)))
    assert set(m.value for m in sent) <= set(got) and len(got) == 1000


def test_idempotent_and_transactional_batches_are_recompressed_with_their_producer_state(broker):
    """An idempotent lz4 producer into a gzip topic: retried sequences still work
    (the header is kept), nothing is duplicated. A transactional producer commits one
    transaction and aborts another: read_committed readers see exactly the committed
    records (markers stay uncompressed control batches)."""
    create(broker.bootstrap, {"codec-eos": {"compression.type": "gzip"}})
    sent = produce_each_codec(broker.bootstrap, "codec-eos", 200, enable_idempotence=True)
    got = rdkafka_io.consume_all(broker.bootstrap, "codec-eos", len(PRODUCER_CODECS))
    assert values(got) == sorted(m.value for m in sent)

    conf = rdkafka_io.producer_config(broker.bootstrap, compression_type="snappy",
                                      transactional_id="codec-txn")
    producer = rdkafka_io.Producer(conf)
    producer.init_transactions(30)
    for commit in (True, False):
        producer.begin_transaction()
        for i in range(50):
            producer.produce("codec-eos", value=b"txn-%d-%d" % (commit, i), partition=0)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    committed = [r.value for r in rdkafka_io.consume_all(
        broker.bootstrap, "codec-eos", len(PRODUCER_CODECS), isolation_level="read_committed")
        if r.value.startswith(b"txn-")]
    assert sorted(committed) == sorted(b"txn-1-%d" % i for i in range(50))
    assert stored_codecs(broker, "codec-eos")[0] == {1}
    markers = [b for b in stored_batches(broker, "codec-eos")[0] if b["attributes"] & 0x20]
    assert len(markers) == 2 and all(b["attributes"] & 7 == 0 for b in markers)


@pytest.mark.parametrize("key,value", [("compression.type", "brotli"),
                                       ("compression.zstd.level", "23"),
                                       ("compression.lz4.level", "0"),
                                       ("compression.gzip.level", "10")])
def test_bad_codecs_and_levels_are_refused_with_invalid_config(broker, key, value):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [future] = admin.create_topics([NewTopic("codec-bad", 1, 1, config={key: value})],
                                   request_timeout=15).values()
    with pytest.raises(Exception) as err:
        future.result()
    assert "INVALID_CONFIG" in str(err.value) or "InvalidConfig" in str(err.value)
