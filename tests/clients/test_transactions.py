"""Transactions (KIP-98, KIP-447) with real clients.

A transactional producer writes records that consumers in `read_committed`
(librdkafka's default, so every confluent-kafka consumer and kcat) see only once
the transaction commits, and never if it aborts. What that takes of the broker:

- InitProducerId with a transactional id: a producer id and an epoch; a second
  producer with the same id fences the first and aborts its open transaction,
  also across a broker crash;
- AddPartitionsToTxn, transactional batches, EndTxn writing one control batch
  (commit or abort marker) into every partition of the transaction;
- the last stable offset: read_committed Fetch and ListOffsets stop at the first
  offset of the oldest open transaction, plain records after it included;
- AbortedTransactions in Fetch, so that consumers drop aborted batches;
- AddOffsetsToTxn + TxnOffsetCommit: a consume-transform-produce loop commits its
  input offsets with its output, or neither;
- the transaction timeout: a stalled producer's transaction is aborted by the
  broker, which unblocks read_committed consumers and fences the producer.

Every record is `key-NN` → `<tag>-<n>` with `n` rising in the order of produce
calls within a test, so that order per partition can be checked; what a reader
must see is built from the producers' delivery reports (partition, offset).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter, defaultdict

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

import rdkafka_io
from workload import Record

KEYS = 24
KCAT = shutil.which("kcat") or "kcat"
OFFSET_BEGINNING = -2
READ_TIMEOUT_S = 30.0
TXN_CALL_TIMEOUT_S = 30.0
# The codes a fenced transactional producer may report (librdkafka maps the broker's
# PRODUCER_FENCED / INVALID_PRODUCER_EPOCH to the fatal _FENCED).
FENCED_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


# --- the workload ------------------------------------------------------------------


def values(tag: str, start: int, count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs number start .. start+count-1: keys cycle over KEYS, so
    every partition of a small topic gets some of each batch."""
    return [(b"key-%02d" % (n % KEYS), b"%s-%06d" % (tag.encode(), n))
            for n in range(start, start + count)]


def sequence_number(value: bytes) -> int:
    return int(value.rsplit(b"-", 1)[1])


def describe(records) -> str:
    return ", ".join(f"p{p}@{o}={v.decode(errors='replace')}" for p, o, _, v in records)


def assert_exactly(got: list[Record], want: list[Record], what: str) -> None:
    """`got` holds exactly the records of `want` (same partition, offset, key,
    value), each once, and per partition in offset order with rising sequence
    numbers (the order they were produced in)."""
    def keyed(records):
        return Counter((r.partition, r.offset, r.key, r.value) for r in records)

    missing = keyed(want) - keyed(got)
    extra = keyed(got) - keyed(want)
    assert not missing and not extra, (
        f"{what}: read {len(got)} records, expected {len(want)}; "
        f"{sum(missing.values())} missing (e.g. {describe(sorted(missing)[:4])}); "
        f"{sum(extra.values())} unexpected (e.g. {describe(sorted(extra)[:4])})")
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for r in got:  # in the order the consumer returned them
        by_partition[r.partition].append(r)
    for p, records in by_partition.items():
        offsets = [r.offset for r in records]
        assert offsets == sorted(set(offsets)), f"{what}: partition {p} returned offsets out of order"
        seqs = [sequence_number(r.value) for r in records]
        assert seqs == sorted(seqs), f"{what}: partition {p} holds records out of produce order"


def only(records: list[Record], *tags: str) -> list[Record]:
    prefixes = tuple(t.encode() + b"-" for t in tags)
    return [r for r in records if r.value.startswith(prefixes)]


def assert_fenced(err: KafkaError, what: str) -> None:
    assert err.fatal() or err.code() in FENCED_CODES, (
        f"{what}: expected a fatal fencing error (_FENCED, PRODUCER_FENCED or "
        f"INVALID_PRODUCER_EPOCH), got {err.name()} ({err.code()}): {err.str()} "
        f"fatal={err.fatal()} retriable={err.retriable()} abortable={err.txn_requires_abort()}")


# --- producers ---------------------------------------------------------------------


class TxnProducer:
    """A confluent-kafka transactional producer that remembers every record the
    broker acknowledged (`acked`) and every delivery that failed (`failed`).

    It is never close()d: close() would abort the open transaction, which some
    stories need left open (a crash, a stall). librdkafka destroys it with the
    object."""

    def __init__(self, bootstrap: str, transactional_id: str, **overrides):
        self.transactional_id = transactional_id
        self.acked: list[Record] = []
        self.failed: list[str] = []
        self.client_errors: list[KafkaError] = []
        config = {
            "bootstrap.servers": bootstrap,
            "transactional.id": transactional_id,
            "partitioner": "murmur2_random",  # Java-compatible placement (KAFKA-COMPAT.md 6)
            "linger.ms": 5,
            "error_cb": self.client_errors.append,
            # A producer a failed test leaves behind would log every reconnect to
            # the stopped broker; fatal errors (level 0) still show.
            "log_level": 2,
        }
        config.update({k.replace("_", "."): v for k, v in overrides.items()})
        self.producer = Producer(config)

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed.append(f"{msg.value()!r}: {err}")
        else:
            self.acked.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value()))

    def init(self, timeout: float = TXN_CALL_TIMEOUT_S) -> None:
        self.producer.init_transactions(timeout)

    def begin(self) -> None:
        self.producer.begin_transaction()

    def send(self, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
        for key, value in pairs:
            while True:
                try:
                    self.producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)

    def flush(self, timeout: float = TXN_CALL_TIMEOUT_S) -> None:
        """Wait until every record sent so far is acknowledged (the transaction stays open)."""
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} records of {self.transactional_id} undelivered after {timeout} s"
        assert not self.failed, f"deliveries failed: {self.failed[:3]}"

    def commit(self, timeout: float = TXN_CALL_TIMEOUT_S) -> None:
        self.producer.commit_transaction(timeout)
        self.producer.poll(0)  # serve the last delivery reports
        assert not self.failed, f"deliveries failed: {self.failed[:3]}"

    def abort(self, timeout: float = TXN_CALL_TIMEOUT_S) -> None:
        self.producer.abort_transaction(timeout)

    def transaction(self, topic: str, pairs: list[tuple[bytes, bytes]], *, commit: bool) -> list[Record]:
        """One whole transaction: begin, send, flush, then commit or abort.
        Returns the records the broker acknowledged inside it."""
        before = len(self.acked)
        self.begin()
        self.send(topic, pairs)
        self.flush()
        records = self.acked[before:]
        assert len(records) == len(pairs)
        if commit:
            self.commit()
        else:
            self.abort()
        return records


def produce_plain(bootstrap: str, topic: str, pairs: list[tuple[bytes, bytes]]) -> list[Record]:
    """Non-transactional records (acks=all); returns them as acknowledged."""
    acked: list[Record] = []
    failed: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            acked.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                  "acks": "all", "linger.ms": 5})
    for key, value in pairs:
        p.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert p.flush(30) == 0, "plain records undelivered"
    assert not failed, f"plain deliveries failed: {failed[:3]}"
    return acked


# --- readers -----------------------------------------------------------------------


class Reader:
    """A confluent-kafka consumer reading every partition of a topic from the
    beginning with assign() (no group), in one isolation level. It keeps what it
    read, so one reader can be held back at the last stable offset and later
    released."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, isolation: str):
        self.partitions = partitions
        self.isolation = isolation
        self.records: list[Record] = []
        self.at_end: set[int] = set()
        self.consumer = Consumer(rdkafka_io.consumer_config(
            bootstrap, group_id=f"reader-{topic}-{isolation}", isolation_level=isolation))
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.topic = topic

    def _poll(self, timeout: float) -> None:
        for msg in self.consumer.consume(num_messages=1000, timeout=timeout):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.at_end.add(msg.partition())
                    continue
                raise KafkaException(err)
            self.at_end.discard(msg.partition())
            self.records.append(Record(msg.partition(), msg.offset(), msg.key(), msg.value()))

    def read_for(self, seconds: float) -> list[Record]:
        """Poll for `seconds`, whatever comes."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._poll(min(0.2, max(0.01, deadline - time.monotonic())))
        return self.records

    def read_until(self, count: int, timeout: float = READ_TIMEOUT_S) -> list[Record]:
        """Poll until at least `count` records have come in all and every partition
        has reported its end since its last record (so nothing readable was left
        behind), or until `timeout`. The caller compares what came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.records) >= count and self.at_end == set(range(self.partitions)):
                break
            self._poll(0.2)
        return self.records

    def end_offsets(self) -> dict[int, int]:
        """ListOffsets LATEST in this reader's isolation level: the high watermark
        for read_uncommitted, the last stable offset for read_committed."""
        return {p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10,
                                                       cached=False)[1]
                for p in range(self.partitions)}

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_confluent(bootstrap: str, topic: str, partitions: int, isolation: str, count: int,
                   timeout: float = READ_TIMEOUT_S) -> list[Record]:
    with Reader(bootstrap, topic, partitions, isolation) as reader:
        return list(reader.read_until(count, timeout))


def read_kafka_python(bootstrap: str, topic: str, partitions: int, isolation: str, count: int,
                      timeout: float = READ_TIMEOUT_S) -> list[Record]:
    """kafka-python from the beginning with assign(): poll until `count` records
    came and every position reached its end offset (ListOffsets in the same
    isolation level), then one more second for anything past it."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KpTopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level=isolation, check_crcs=True, fetch_max_wait_ms=100)
    try:
        tps = [KpTopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        records: list[Record] = []

        def poll(ms: int) -> None:
            for _, batch in consumer.poll(timeout_ms=ms).items():
                records.extend(Record(m.partition, m.offset, m.key, m.value) for m in batch)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            poll(200)
            if len(records) >= count:
                ends = consumer.end_offsets(tps, timeout_ms=10000)
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
        poll(1000)
        return records
    finally:
        consumer.close()


def read_kcat(bootstrap: str, topic: str, isolation: str) -> list[Record]:
    """kcat -C -e from the beginning over all partitions: exits at the end of each
    (the last stable offset under read_committed)."""
    cmd = [KCAT, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
           "-X", f"isolation.level={isolation}", "-X", "check.crcs=true",
           "-f", r"%p\t%o\t%k\t%s\n"]
    result = subprocess.run(cmd, capture_output=True, timeout=60)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} exited {result.returncode}\n"
        f"stderr: {result.stderr.decode(errors='replace')[-3000:]}")
    records = []
    for line in result.stdout.decode().splitlines():
        partition, offset, key, value = line.split("\t")
        records.append(Record(int(partition), int(offset), key.encode(), value.encode()))
    return records


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    with Reader(bootstrap, topic, partitions, "read_uncommitted") as reader:
        return reader.end_offsets()


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int,
                      isolation: str = "read_committed", timeout: float = 15) -> dict[int, int]:
    """OffsetFetch through a fresh consumer that does not join the group. Under
    read_committed librdkafka asks for stable offsets only (KIP-447 require_stable)
    and asks again while the broker answers UNSTABLE_OFFSET_COMMIT. Raises
    KafkaException on an error, also one of a single partition."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": isolation,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=timeout)
        errors = [tp.error for tp in tps if tp.error is not None]
        if errors:
            raise KafkaException(errors[0])
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


def wait_for_markers(bootstrap: str, topic: str, partitions: int, want: dict[int, int],
                     timeout: float = 15) -> dict[int, int]:
    """High watermarks, polled until they equal `want` (EndTxn may be answered
    before the markers are appended) or `timeout`."""
    deadline = time.monotonic() + timeout
    marks = high_watermarks(bootstrap, topic, partitions)
    while marks != want and time.monotonic() < deadline:
        time.sleep(0.2)
        marks = high_watermarks(bootstrap, topic, partitions)
    return marks


# --- the stories -------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_committed_transaction_is_read_exactly_once_in_order(broker):
    """A transactional producer sends 2,000 keyed records to four partitions in
    one transaction and commits. A read_committed consumer (librdkafka's default)
    reads exactly those records, each once, in order per partition, at the offsets
    the producer was told; each partition ends with one commit marker."""
    topic, partitions = "txn-commit", 4
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    producer = TxnProducer(broker.bootstrap, "txn-commit-id")
    producer.init()
    sent = producer.transaction(topic, values("c", 0, 2000), commit=True)

    got = read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(sent))
    assert_exactly(got, sent, "read_committed after one commit")

    per_partition = Counter(r.partition for r in sent)
    assert set(per_partition) == set(range(partitions)), "the keys cover every partition"
    for p, n in per_partition.items():
        offsets = sorted(r.offset for r in sent if r.partition == p)
        assert offsets == list(range(n)), f"partition {p}: the transaction's records sit at 0..{n - 1}"
    marks = wait_for_markers(broker.bootstrap, topic, partitions,
                             {p: n + 1 for p, n in per_partition.items()})
    assert marks == {p: n + 1 for p, n in per_partition.items()}, (
        "each partition holds its records plus exactly one control batch (the commit marker)")


@pytest.mark.timeout(180)
def test_aborted_records_are_hidden_from_read_committed_in_every_client(broker):
    """One producer commits, aborts, then commits again (three transactions over
    three partitions). read_committed readers — confluent-kafka, kafka-python
    (isolation_level='read_committed') and kcat — see exactly the two committed
    transactions; read_uncommitted readers (confluent-kafka, kafka-python) see all
    three, aborted records included; no reader sees a control record. Each
    transaction leaves one marker in each partition."""
    topic, partitions = "txn-abort", 3
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    producer = TxnProducer(broker.bootstrap, "txn-abort-id")
    producer.init()
    first = producer.transaction(topic, values("first", 0, 300), commit=True)
    aborted = producer.transaction(topic, values("aborted", 300, 200), commit=False)
    third = producer.transaction(topic, values("third", 500, 300), commit=True)
    committed, everything = first + third, first + aborted + third

    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(committed)),
                   committed, "confluent-kafka read_committed")
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted", len(everything)),
                   everything, "confluent-kafka read_uncommitted")
    assert_exactly(read_kafka_python(broker.bootstrap, topic, partitions, "read_committed", len(committed)),
                   committed, "kafka-python read_committed")
    assert_exactly(read_kafka_python(broker.bootstrap, topic, partitions, "read_uncommitted", len(everything)),
                   everything, "kafka-python read_uncommitted")
    assert_exactly(read_kcat(broker.bootstrap, topic, "read_committed"), committed, "kcat read_committed")

    touched = Counter()
    for txn in (first, aborted, third):
        touched.update({r.partition for r in txn})
    want = {p: Counter(r.partition for r in everything)[p] + touched[p] for p in range(partitions)}
    assert high_watermarks(broker.bootstrap, topic, partitions) == want, (
        "each partition holds its records plus one marker per transaction that touched it")


@pytest.mark.timeout(120)
def test_an_open_transaction_holds_read_committed_at_the_last_stable_offset(broker):
    """After one committed transaction, a second stays open with its records
    acknowledged, and a plain producer writes more after them. A read_committed
    consumer gets only the committed transaction and nothing more for four
    seconds; ListOffsets (read_committed) answers the first offset of the open
    transaction in each partition (the last stable offset), read_uncommitted the
    high watermark; a read_uncommitted consumer gets everything. Once the
    transaction commits, the same read_committed consumer gets the rest — its
    records and the plain ones — in offset order."""
    topic, partitions = "txn-lso", 2
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    producer = TxnProducer(broker.bootstrap, "txn-lso-id")
    producer.init()
    committed = producer.transaction(topic, values("committed", 0, 100), commit=True)
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(committed)),
                   committed, "read_committed before the open transaction")

    producer.begin()
    producer.send(topic, values("open", 100, 60))
    producer.flush()
    open_records = only(producer.acked, "open")
    assert len(open_records) == 60
    plain = produce_plain(broker.bootstrap, topic, values("plain", 160, 40))
    assert {r.partition for r in open_records} == set(range(partitions))

    with Reader(broker.bootstrap, topic, partitions, "read_committed") as held:
        assert_exactly(held.read_for(4.0), committed,
                       "read_committed while a transaction is open (nothing past the last stable offset)")
        lso = {p: min(r.offset for r in open_records if r.partition == p) for p in range(partitions)}
        hwm = {p: max(r.offset for r in open_records + plain if r.partition == p) + 1
               for p in range(partitions)}
        assert held.end_offsets() == lso, "ListOffsets LATEST under read_committed is the last stable offset"
        with Reader(broker.bootstrap, topic, partitions, "read_uncommitted") as loose:
            assert loose.end_offsets() == hwm, "ListOffsets LATEST under read_uncommitted is the high watermark"
            everything = committed + open_records + plain
            assert_exactly(loose.read_until(len(everything)), everything,
                           "read_uncommitted while a transaction is open")

        producer.commit()
        assert_exactly(held.read_until(len(everything)), everything,
                       "the held read_committed consumer after the commit")


@pytest.mark.timeout(150)
def test_a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction(broker):
    """Producer A opens a transaction and gets 60 records acknowledged. Producer B
    with the same transactional.id calls init_transactions: that fences A and
    aborts A's transaction. A's next transactional work (10 more records and a
    commit) fails with a fatal fencing error and is not written. B commits 40
    records normally. read_committed sees exactly B's records; read_uncommitted
    sees A's 60 (written, then aborted) and B's 40, and nothing of A after the
    fence."""
    topic, partitions = "txn-fence", 2
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    a = TxnProducer(broker.bootstrap, "txn-fence-id")
    a.init()
    a.begin()
    a.send(topic, values("zombie", 0, 60))
    a.flush()
    zombie = list(a.acked)

    b = TxnProducer(broker.bootstrap, "txn-fence-id")
    b.init()  # bumps the epoch; returns once A's transaction is aborted

    with pytest.raises(KafkaException) as raised:
        a.send(topic, values("late", 60, 10))
        a.commit(timeout=20)
    assert_fenced(raised.value.args[0], "the fenced producer's commit")
    assert not only(a.acked, "late"), f"records of the fenced producer were acknowledged: {only(a.acked, 'late')[:3]}"

    fresh = b.transaction(topic, values("b", 70, 40), commit=True)
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(fresh)),
                   fresh, "read_committed after the fence")
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                  len(zombie) + len(fresh)),
                   zombie + fresh, "read_uncommitted after the fence")


def consume_batch(consumer: Consumer, count: int, timeout: float = READ_TIMEOUT_S) -> list:
    """`count` messages from a group consumer, or fail after `timeout`."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=count - len(got), timeout=0.5):
            if msg.error() is None:
                got.append(msg)
            elif msg.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(msg.error())
    assert len(got) == count, f"the group consumer got {len(got)} of {count} messages in {timeout} s"
    return got


@pytest.mark.timeout(150)
def test_consume_transform_produce_commits_offsets_with_the_output_or_neither(broker):
    """A group consumer reads 300 input records; for each batch of at most 100 a
    transactional producer writes the transformed records and sends the
    consumer's positions with send_offsets_to_transaction, then commits. The
    group's committed offsets (a fresh consumer's committed()) are then exactly
    those positions — the end of the input — and the output holds each
    transformed record once. Then 90 more inputs go through the same loop but
    the transaction aborts: while it was open the pending offsets were not
    committed (read_uncommitted OffsetFetch returns the old ones, a
    require_stable OffsetFetch gets no answer but UNSTABLE_OFFSET_COMMIT),
    and after the abort the group's offsets are not advanced and none
    of the 90 outputs is readable."""
    source, sink, group, partitions = "ctp-in", "ctp-out", "ctp-group", 3
    rdkafka_io.create_topic(broker.bootstrap, source, partitions)
    rdkafka_io.create_topic(broker.bootstrap, sink, partitions)
    inputs = produce_plain(broker.bootstrap, source, values("in", 0, 300))

    producer = TxnProducer(broker.bootstrap, "ctp-txn-id")
    producer.init()
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    try:
        consumer.subscribe([source])

        def transform(batch, commit: bool) -> list[TopicPartition]:
            producer.begin()
            producer.send(sink, [(m.key(), b"out-" + m.value()) for m in batch])
            positions = consumer.position(consumer.assignment())
            producer.producer.send_offsets_to_transaction(
                positions, consumer.consumer_group_metadata(), TXN_CALL_TIMEOUT_S)
            if commit:
                producer.commit()
            else:
                producer.flush()  # the outputs are in the log, to be aborted
            return positions

        done = 0
        positions: list[TopicPartition] = []
        while done < len(inputs):
            batch = consume_batch(consumer, min(100, len(inputs) - done))
            positions = transform(batch, commit=True)
            done += len(batch)

        ends = high_watermarks(broker.bootstrap, source, partitions)
        at = {tp.partition: tp.offset for tp in positions}
        assert at == ends, "after all input the consumer's positions are the input's ends"
        assert committed_offsets(broker.bootstrap, group, source, partitions) == ends, (
            "the transaction committed the group's offsets at the positions sent")
        outputs = read_confluent(broker.bootstrap, sink, partitions, "read_committed", len(inputs))
        assert sorted(r.value for r in outputs) == sorted(b"out-" + r.value for r in inputs), (
            "every input is transformed exactly once in the committed output")
        assert_exactly(outputs, only(producer.acked, "out-in"), "the committed output")

        more = produce_plain(broker.bootstrap, source, values("in", 300, 90))
        batch = consume_batch(consumer, len(more))
        pending = {tp.partition: tp.offset for tp in transform(batch, commit=False)}
        assert pending == high_watermarks(broker.bootstrap, source, partitions)
        assert pending != ends
        assert committed_offsets(broker.bootstrap, group, source, partitions,
                                 isolation="read_uncommitted") == ends, (
            "offsets sent in an open transaction are not committed yet")
        # KIP-447: a read_committed consumer asks for stable offsets (require_stable);
        # the broker answers UNSTABLE_OFFSET_COMMIT while the transaction is open
        # and librdkafka asks again until its timeout.
        with pytest.raises(KafkaException) as unstable:
            committed_offsets(broker.bootstrap, group, source, partitions, timeout=3)
        assert unstable.value.args[0].code() in (
            KafkaError.UNSTABLE_OFFSET_COMMIT, KafkaError._TIMED_OUT), unstable.value.args[0].str()
        producer.abort()
    finally:
        consumer.close()

    assert committed_offsets(broker.bootstrap, group, source, partitions) == ends, (
        "an aborted transaction does not advance the group's committed offsets")
    assert_exactly(read_confluent(broker.bootstrap, sink, partitions, "read_committed", len(inputs)),
                   outputs, "the output after the aborted transaction")


@pytest.mark.timeout(180)
def test_a_transaction_open_at_a_sigkill_is_aborted_by_the_next_producer(broker):
    """A producer commits 100 records, then opens a transaction and gets 50 more
    acknowledged. The broker is SIGKILLed and restarted on the same data dir. The
    open transaction is still open (read_committed sees only the 100). A new
    producer with the same transactional.id calls init_transactions, which aborts
    it; the old producer can no longer commit; the new one commits 70 records.
    read_committed sees exactly the 100 from before the crash and the 70;
    read_uncommitted sees all 220."""
    topic, partitions = "txn-crash", 2
    txn_id = "txn-crash-id"
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    old = TxnProducer(broker.bootstrap, txn_id)
    old.init()
    before = old.transaction(topic, values("before", 0, 100), commit=True)
    old.begin()
    old.send(topic, values("inflight", 100, 50))
    old.flush()
    inflight = only(old.acked, "inflight")

    broker.restart(kill=True)

    with Reader(broker.bootstrap, topic, partitions, "read_committed") as reader:
        assert_exactly(reader.read_for(3.0), before,
                       "read_committed after the restart, the transaction still open")

    new = TxnProducer(broker.bootstrap, txn_id)
    new.init(timeout=60)
    with pytest.raises(KafkaException) as raised:
        old.commit(timeout=20)
    assert_fenced(raised.value.args[0], "the pre-crash producer's commit after init_transactions")
    after = new.transaction(topic, values("after", 150, 70), commit=True)

    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed",
                                  len(before) + len(after)),
                   before + after, "read_committed after the crash and the new commit")
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                  len(before) + len(inflight) + len(after)),
                   before + inflight + after, "read_uncommitted after the crash")


STALL_TIMEOUT_MS = 3000
ABORT_GRACE_S = 30.0


@pytest.mark.timeout(150)
def test_the_broker_aborts_a_stalled_transaction_after_its_timeout(broker):
    """A producer with transaction.timeout.ms=3000 opens a transaction, gets 30
    records acknowledged and stalls. Another transactional producer commits 40
    records behind them. The broker aborts the stalled transaction once its
    timeout passes: a read_committed consumer, held at the last stable offset
    until then, gets exactly the 40 (not before three seconds from the stalled
    transaction's start), never the 30; the stalled producer's commit then fails
    (it is fenced, not timed out)."""
    topic, partitions = "txn-timeout", 2
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    stalled = TxnProducer(broker.bootstrap, "txn-stalled-id", transaction_timeout_ms=STALL_TIMEOUT_MS)
    stalled.init()
    mover = TxnProducer(broker.bootstrap, "txn-mover-id")
    mover.init()

    stalled.begin()
    started = time.monotonic()
    stalled.send(topic, values("stalled", 0, 30))
    stalled.flush()
    abandoned = list(stalled.acked)
    assert {r.partition for r in abandoned} == set(range(partitions))
    moved = mover.transaction(topic, values("moved", 30, 40), commit=True)

    with Reader(broker.bootstrap, topic, partitions, "read_committed") as reader:
        deadline = started + STALL_TIMEOUT_MS / 1000 + ABORT_GRACE_S
        first_seen = None
        while time.monotonic() < deadline:
            reader.read_for(0.1)
            if reader.records and first_seen is None:
                first_seen = time.monotonic() - started
            if len(reader.records) >= len(moved) and reader.at_end == set(range(partitions)):
                break
        got = list(reader.records)
    assert first_seen is not None, (
        f"read_committed got nothing within {STALL_TIMEOUT_MS / 1000 + ABORT_GRACE_S:.0f} s: "
        "the stalled transaction was not aborted")
    print(f"the stalled transaction's records were passed {first_seen:.1f} s after it began")
    assert_exactly(got, moved, "read_committed after the stalled transaction timed out")
    assert first_seen >= STALL_TIMEOUT_MS / 1000 - 0.1, (
        f"read_committed passed the open transaction after {first_seen:.1f} s, "
        f"before its {STALL_TIMEOUT_MS} ms timeout")

    with pytest.raises(KafkaException) as raised:
        stalled.commit(timeout=20)
    err = raised.value.args[0]
    assert err.code() != KafkaError._TIMED_OUT, f"the commit timed out instead of failing: {err.str()}"
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(moved)),
                   moved, "read_committed after the stalled producer's commit attempt")
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted",
                                  len(abandoned) + len(moved)),
                   abandoned + moved, "read_uncommitted: the aborted records are in the log")


@pytest.mark.timeout(120)
def test_kafka_python_transactional_producer_commits_and_aborts(broker):
    """kafka-python's transactional producer (its own InitProducerId,
    AddPartitionsToTxn and EndTxn versions) commits 150 records, aborts 100,
    commits 150 more. confluent-kafka and kafka-python read_committed consumers
    see exactly the 300 committed, in order per partition."""
    from kafka import KafkaProducer

    topic, partitions = "txn-kp", 3
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="txn-kp-id",
                             linger_ms=5, request_timeout_ms=30000, max_block_ms=30000)
    acked: dict[str, list[Record]] = {}
    try:
        producer.init_transactions()
        for tag, start, count, commit in (("one", 0, 150, True), ("dropped", 150, 100, False),
                                          ("two", 250, 150, True)):
            producer.begin_transaction()
            futures = [(k, v, producer.send(topic, key=k, value=v)) for k, v in values(tag, start, count)]
            producer.flush(30)
            acked[tag] = []
            for k, v, f in futures:
                meta = f.get(timeout=1)
                acked[tag].append(Record(meta.partition, meta.offset, k, v))
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=10)

    committed = acked["one"] + acked["two"]
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_committed", len(committed)),
                   committed, "confluent-kafka read_committed of kafka-python's transactions")
    assert_exactly(read_kafka_python(broker.bootstrap, topic, partitions, "read_committed", len(committed)),
                   committed, "kafka-python read_committed of kafka-python's transactions")
    everything = acked["one"] + acked["dropped"] + acked["two"]
    assert_exactly(read_confluent(broker.bootstrap, topic, partitions, "read_uncommitted", len(everything)),
                   everything, "confluent-kafka read_uncommitted of kafka-python's transactions")
