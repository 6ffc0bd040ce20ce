"""Compacted topics (issue 16): `cleanup.policy=compact` as Kafka defines it.

A changelog topic is created compacted with a short `segment.ms` (the active segment
rolls on the next append once it is that old, and sealed segments are what the
cleaner rewrites), a dirty ratio near 0 and a short `delete.retention.ms`; the broker
runs its cleaner every 100 ms. Real clients (confluent-kafka and kafka-python) write
keyed updates and tombstones; a consumer from the beginning then sees exactly the
latest value of every live key, no deleted key once delete.retention.ms has passed,
and offsets strictly increasing with the gaps compaction leaves. Around that: a
keyless record is refused with INVALID_RECORD, DescribeConfigs shows the configs with
their source and IncrementalAlterConfigs APPEND/SUBTRACT edits cleanup.policy,
aborted transactional records disappear, an idempotent producer keeps producing across
cleanings, a changelog cleaned to its end is not cleaned again after a restart (the
cleaner's checkpoint), and a broker SIGKILLed again and again while it cleans loses
nothing.

Before this change the broker refused cleanup.policy=compact with INVALID_CONFIG: every
test here failed at its first step.
"""

from __future__ import annotations

import random
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource)

import rdkafka_io
import wire

CLEANER_ARGS = ("--cleaner-backoff-ms", "100")
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.ms": "200",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "2000",
}
WAIT_S = 60.0


@pytest.fixture
def cbroker(broker_factory):
    return broker_factory(extra_args=CLEANER_ARGS)


def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes | None]], **config) -> list:
    """Produce (key, value) pairs to partition 0, acks=all; returns the delivery reports."""
    reports = []
    p = Producer(rdkafka_io.producer_config(bootstrap, linger_ms=5, **config))
    for k, v in items:
        p.produce(topic, key=k, value=v, partition=0,
                  on_delivery=lambda err, msg: reports.append((err, msg.offset() if msg else None)))
        p.poll(0)
    assert p.flush(30) == 0
    return reports


def read_all(bootstrap: str, topic: str, **overrides) -> list[tuple[int, bytes, bytes | None]]:
    return [(r.offset, r.key, r.value)
            for r in rdkafka_io.consume_all(bootstrap, topic, 1, timeout=30, **overrides)]


def rounds(bootstrap: str, topic: str, keys: int, count: int) -> dict[bytes, bytes | None]:
    """`count` rounds of an update of every key, a segment.ms apart (each round rolls a
    segment), the last one deleting every third key. Returns the latest value per key."""
    latest: dict[bytes, bytes | None] = {}
    for r in range(count):
        items = []
        for k in range(keys):
            key = b"key-%03d" % k
            value = None if r == count - 1 and k % 3 == 0 else b"value-%03d-round-%d" % (k, r)
            items.append((key, value))
            latest[key] = value
        for err, _ in produce(bootstrap, topic, items):
            assert err is None, err
        time.sleep(0.25)
    return latest


def sentinel(bootstrap: str, topic: str, n: int) -> tuple[bytes, bytes]:
    """A record of a key of its own: rolls the segment before it (so it can be cleaned)."""
    item = (b"sentinel-%d" % n, b"s")
    for err, _ in produce(bootstrap, topic, [item]):
        assert err is None, err
    return item


def wait_until(what: str, check, timeout: float = WAIT_S, every: float = 0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s; last seen {last!r}")


def expected_view(latest: dict[bytes, bytes | None], extra: dict[bytes, bytes]) -> dict:
    view = {k: v for k, v in latest.items() if v is not None}
    view.update(extra)
    return view


def test_a_consumer_from_the_beginning_sees_the_latest_value_of_every_live_key(cbroker):
    topic = "changelog"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    latest = rounds(cbroker.bootstrap, topic, keys=60, count=6)
    extra = dict([sentinel(cbroker.bootstrap, topic, 0)])
    produced = 60 * 6 + 1

    def compacted():
        recs = read_all(cbroker.bootstrap, topic)
        keys = [k for _, k, _ in recs]
        return len(recs) < produced and len(set(keys)) == len(keys), recs
    recs = wait_until("the cleaner compacted the changelog", compacted)
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets)), "offsets strictly increasing"
    by_key = {k: v for _, k, v in recs}
    assert by_key == {**latest, **extra}, "the latest value of every key, tombstones included"
    # Once delete.retention.ms has passed, the next cleaning drops the tombstones.
    time.sleep(2.5)
    extra.update([sentinel(cbroker.bootstrap, topic, 1)])
    want = expected_view(latest, extra)

    def exactly_latest():
        recs = read_all(cbroker.bootstrap, topic)
        return {k: v for _, k, v in recs} == want and len(recs) == len(want), recs
    recs = wait_until("only the latest value of every live key is left", exactly_latest)
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets))
    assert offsets[-1] + 1 > len(offsets), "compaction leaves gaps in the offsets"
    # The metrics show the work.
    read = cbroker.metric("sluice_cleaner_bytes_read_total")
    assert sum(read.values()) > 0
    ratios = cbroker.metric("sluice_cleaner_dirty_ratio")
    assert any(dict(labels).get("topic") == topic for labels in ratios), ratios


def test_kafka_python_reads_across_gaps_and_from_an_offset_compacted_away(cbroker):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KpTp
    topic = "profiles"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    producer = KafkaProducer(bootstrap_servers=cbroker.bootstrap, acks="all", linger_ms=5)
    latest = {}
    for r in range(5):
        for k in range(20):
            key, value = b"user-%02d" % k, b"profile-%02d-v%d" % (k, r)
            producer.send(topic, key=key, value=value, partition=0).get(timeout=30)
            latest[key] = value
        time.sleep(0.25)
    producer.send(topic, key=b"last", value=b"x", partition=0).get(timeout=30)
    producer.close()
    latest[b"last"] = b"x"

    def read(start: int | None = None):
        c = KafkaConsumer(bootstrap_servers=cbroker.bootstrap, enable_auto_commit=False,
                          consumer_timeout_ms=3000, auto_offset_reset="earliest")
        tp = KpTp(topic, 0)
        c.assign([tp])
        if start is None:
            c.seek_to_beginning(tp)
        else:
            c.seek(tp, start)
        out = [(m.offset, m.key, m.value) for m in c]
        c.close()
        return out

    def compacted():
        recs = read()
        return {k: v for _, k, v in recs} == latest and len(recs) == len(latest), recs
    recs = wait_until("kafka-python sees the compacted log", compacted)
    offsets = [o for o, _, _ in recs]
    assert offsets == sorted(set(offsets)) and offsets[-1] + 1 > len(offsets)
    kept = set(offsets)
    gap = next(o for o in range(offsets[-1]) if o not in kept)
    after = read(gap)
    assert after and after[0][0] > gap, "a fetch from an offset compacted away starts after it"
    assert after == [r for r in recs if r[0] > gap]


def cleaner_total(broker, name: str) -> float:
    return sum(broker.metric(name).values())


def test_a_changelog_cleaned_to_its_end_is_not_cleaned_again_after_a_restart(cbroker):
    """The cleaner's checkpoint (`cleaner-checkpoint.state`) survives a restart: the next
    broker knows the changelog is clean and reads none of it again. Without it every
    compacted partition is wholly dirty after a start and cleaned again from its start."""
    topic = "checkpointed"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    for r in range(4):
        items = [(b"key-%03d" % k, b"round-%d" % r) for k in range(60)]
        for err, _ in produce(cbroker.bootstrap, topic, items):
            assert err is None, err
        time.sleep(0.25)
    sentinel(cbroker.bootstrap, topic, 0)
    wait_until("the changelog is cleaned", lambda: (len(read_all(cbroker.bootstrap, topic)) == 61, None))

    def idle():
        before = cleaner_total(cbroker, "sluice_cleaner_passes_total")
        time.sleep(1.0)
        after = cleaner_total(cbroker, "sluice_cleaner_passes_total")
        return before == after, after
    wait_until("the cleaner is idle", idle)
    assert (cbroker.data_dir / f"{topic}-0" / "cleaner-checkpoint.state").exists()
    cbroker.restart()
    rdkafka_io.wait_for_partitions(cbroker.bootstrap, topic, 1)
    time.sleep(2.0)  # twenty cleaner rounds (--cleaner-backoff-ms 100)
    assert cleaner_total(cbroker, "sluice_cleaner_bytes_read_total") == 0, \
        "nothing was cleaned again after the restart"
    assert len(read_all(cbroker.bootstrap, topic)) == 61


def test_a_keyless_record_is_refused_with_invalid_record(cbroker):
    topic = "keyed-only"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    reports = produce(cbroker.bootstrap, topic, [(None, b"no key")], retries=0)
    (err, _), = reports
    assert err is not None and err.code() == KafkaError.INVALID_RECORD, err
    ok = produce(cbroker.bootstrap, topic, [(b"k", b"with key")])
    assert ok[0][0] is None


def describe(admin: AdminClient, topic: str) -> dict:
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(timeout=15)


def test_configs_are_described_with_their_source_and_cleanup_policy_is_a_list(cbroker):
    topic = "configs"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, {"cleanup.policy": "compact"})
    admin = AdminClient({"bootstrap.servers": cbroker.bootstrap})
    c = describe(admin, topic)
    assert c["cleanup.policy"].value == "compact"
    assert c["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    for name, default in [("min.cleanable.dirty.ratio", "0.5"), ("delete.retention.ms", "86400000"),
                          ("min.compaction.lag.ms", "0")]:
        assert c[name].value == default and c[name].source == ConfigSource.DEFAULT_CONFIG.value
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.APPEND),
        ConfigEntry("delete.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    c = describe(admin, topic)
    assert c["cleanup.policy"].value == "compact,delete"
    assert c["delete.retention.ms"].value == "1000"
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SUBTRACT)])
    admin.incremental_alter_configs([res])[res].result(timeout=15)
    assert describe(admin, topic)["cleanup.policy"].value == "delete"
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.APPEND)])
    with pytest.raises(KafkaException) as e:
        admin.incremental_alter_configs([res])[res].result(timeout=15)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_aborted_transactional_records_disappear(cbroker):
    topic = "txn-changelog"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    p = Producer(rdkafka_io.producer_config(cbroker.bootstrap, transactional_id="compaction-txn",
                                            linger_ms=5))
    p.init_transactions(30)
    for r, abort in enumerate([False, True, False, True]):
        p.begin_transaction()
        for k in range(10):
            p.produce(topic, key=b"t-%d-%d" % (r, k), value=b"aborted" if abort else b"committed",
                      partition=0)
        p.flush(30)
        if abort:
            p.abort_transaction(30)
        else:
            p.commit_transaction(30)
        time.sleep(0.25)
    p.begin_transaction()
    p.produce(topic, key=b"last", value=b"committed", partition=0)
    p.commit_transaction(30)

    def no_aborted():
        # read_uncommitted shows aborted records until the cleaner removes them.
        recs = read_all(cbroker.bootstrap, topic, isolation_level="read_uncommitted")
        return all(v == b"committed" for _, _, v in recs) and len(recs) == 21, recs
    wait_until("the aborted records are gone", no_aborted)
    committed = read_all(cbroker.bootstrap, topic)
    want = sorted([b"t-%d-%d" % (r, k) for r in (0, 2) for k in range(10)] + [b"last"])
    assert sorted(k for _, k, _ in committed) == want

    def markers():
        with wire.connect(cbroker.port) as sock:
            sock.sendall(wire.fetch_v4_request(3, topic, {0: 0}))
            found = wire.fetch_v4_batches(wire.read_frame(sock))[0]
        return [b["base_offset"] for b in found if b["attributes"] & 0x20]
    # delete.retention.ms after the aborted records went, their ABORT markers go too
    # (the three COMMIT markers stay with their records). A read_committed reader told
    # of an aborted transaction whose marker it never reads would skip every later
    # batch of that producer: the broker must forget the transaction with its marker.
    wait_until("the ABORT markers are gone", lambda: (len(markers()) == 3, markers()))
    for isolation in ("read_committed", "read_uncommitted"):
        got = read_all(cbroker.bootstrap, topic, isolation_level=isolation)
        assert sorted(k for _, k, _ in got) == want, isolation
    cbroker.restart(kill=True)
    got = read_all(cbroker.bootstrap, topic)
    assert sorted(k for _, k, _ in got) == want, "after a SIGKILL and restart"


def test_an_idempotent_producer_keeps_producing_across_compactions(cbroker):
    topic = "idempotent-changelog"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    errors = []
    p = Producer(rdkafka_io.producer_config(cbroker.bootstrap, enable_idempotence=True,
                                            linger_ms=2))
    passes_before = sum(cbroker.metric("sluice_cleaner_passes_total").values())
    latest = {}
    deadline = time.monotonic() + 6
    n = 0
    while time.monotonic() < deadline:
        key, value = b"k-%02d" % (n % 30), b"v-%d" % n
        p.produce(topic, key=key, value=value, partition=0,
                  on_delivery=lambda err, msg: err and errors.append(err))
        latest[key] = value
        n += 1
        p.poll(0)
        time.sleep(0.002)
    assert p.flush(30) == 0
    assert not errors, errors[:5]
    assert sum(cbroker.metric("sluice_cleaner_passes_total").values()) > passes_before + 2, \
        "the cleaner ran while the producer produced"
    recs = read_all(cbroker.bootstrap, topic)
    assert {k: v for _, k, v in recs if k in latest} == latest


def test_a_broker_killed_again_and_again_while_cleaning_loses_nothing_it_must_keep(broker_factory):
    b = broker_factory(flush="always", extra_args=CLEANER_ARGS + ("--cleaner-io-bytes-per-sec", "300000"))
    topic = "killed-changelog"
    rdkafka_io.create_topic(b.bootstrap, topic, 1, {**COMPACTED, "segment.bytes": "16384"})
    rng = random.Random(16)
    latest: dict[bytes, bytes] = {}
    for life in range(6):
        for r in range(4):
            items = [(b"key-%03d" % k, b"life-%d-round-%d-" % (life, r) + b"x" * rng.randrange(50, 300))
                     for k in range(120)]
            for (err, _), (k, v) in zip(produce(b.bootstrap, topic, items), items):
                assert err is None, err
                latest[k] = v
            time.sleep(0.22)
        time.sleep(rng.uniform(0.0, 0.6))
        b.restart(kill=True)
        rdkafka_io.wait_for_partitions(b.bootstrap, topic, 1)
    sentinel(b.bootstrap, topic, 0)
    latest[b"sentinel-0"] = b"s"
    recs = read_all(b.bootstrap, topic)
    got = {}
    for o, k, v in recs:
        got[k] = v
    assert got == latest, "the latest acknowledged value of every key survived"

    def compacted():
        recs = read_all(b.bootstrap, topic)
        return len(recs) == len(latest), len(recs)
    wait_until("the log is compacted after the kills", compacted)
    assert sum(b.metric("sluice_cleaner_passes_total").values()) > 0
