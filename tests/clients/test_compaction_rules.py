"""Compacted topics (issue 16), the rules around the cleaner: `compact,delete` topics
still lose old segments to retention and to DeleteRecords, `min.compaction.lag.ms`
keeps recent records out of cleaning, `max.compaction.lag.ms` forces a cleaning that
the dirty ratio alone would never start, and Produce v9 names every keyless record of a
refused set in `record_errors`.

The helpers (the broker's cleaner args, the compacted topic config, produce/read/wait)
are those of test_compaction.py.
"""

from __future__ import annotations

import struct
import time

from kafka import TopicPartition as KpTp
from kafka.admin import KafkaAdminClient
from kafka.record.default_records import DefaultRecordBatchBuilder

import rdkafka_io
import wire
from test_compaction import (CLEANER_ARGS, COMPACTED, cbroker, produce, read_all,  # noqa: F401
                             sentinel, wait_until)

INVALID_RECORD = 87


def update_rounds(bootstrap: str, topic: str, keys: int, count: int) -> int:
    """`count` rounds of an update of every key (no tombstones), a segment.ms apart.
    Returns how many records were produced."""
    for r in range(count):
        items = [(b"key-%03d" % k, b"value-%03d-round-%d" % (k, r)) for k in range(keys)]
        for err, _ in produce(bootstrap, topic, items):
            assert err is None, err
        time.sleep(0.25)
    return keys * count


def unique_keys(recs) -> bool:
    keys = [k for _, k, _ in recs]
    return len(set(keys)) == len(keys)


def test_a_compact_delete_topic_is_compacted_and_still_honours_delete_records_and_retention(broker_factory):
    b = broker_factory(extra_args=CLEANER_ARGS + ("--retention-check-interval-ms", "200"))
    topic = "compact-and-delete"
    rdkafka_io.create_topic(b.bootstrap, topic, 1,
                            {**COMPACTED, "cleanup.policy": "compact,delete", "retention.ms": "10000"})
    produced = update_rounds(b.bootstrap, topic, keys=30, count=4) + 1
    sentinel(b.bootstrap, topic, 0)

    def compacted():
        recs = read_all(b.bootstrap, topic)
        return len(recs) < produced and unique_keys(recs), recs
    recs = wait_until("the cleaner compacted the compact,delete topic", compacted)
    # DeleteRecords below an offset in the middle of the compacted log: the log start
    # moves there and nothing below it is served.
    cut = recs[len(recs) // 2][0]
    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        admin.delete_records({KpTp(topic, 0): cut})
    finally:
        admin.close()
    start, _ = rdkafka_io.high_watermarks(b.bootstrap, topic, 1)[0]
    assert start == cut
    after = read_all(b.bootstrap, topic)
    assert after == [r for r in recs if r[0] >= cut]
    # retention.ms: once every record of the sealed segments is older than it, they go,
    # compacted or not; only the active segment (a new sentinel) is left.
    time.sleep(10.5)
    key, _ = sentinel(b.bootstrap, topic, 1)

    def only_the_new_sentinel():
        left = read_all(b.bootstrap, topic)
        return [k for _, k, _ in left] == [key], left
    left = wait_until("retention deleted the old segments", only_the_new_sentinel)
    start, hwm = rdkafka_io.high_watermarks(b.bootstrap, topic, 1)[0]
    assert (start, hwm) == (left[0][0], left[0][0] + 1)


def test_records_younger_than_min_compaction_lag_are_not_cleaned(cbroker):
    topic = "lagging"
    lag_ms = 8000
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1,
                            {**COMPACTED, "min.compaction.lag.ms": str(lag_ms)})
    first = time.monotonic()
    produced = update_rounds(cbroker.bootstrap, topic, keys=30, count=4) + 1
    sentinel(cbroker.bootstrap, topic, 0)
    time.sleep(1.5)  # fifteen cleaner rounds
    recs = read_all(cbroker.bootstrap, topic)
    young = time.monotonic() - first
    assert young < lag_ms / 1000 - 0.5, f"the records were produced too slowly ({young:.1f} s) to test the lag"
    assert len(recs) == produced, "a record younger than min.compaction.lag.ms was cleaned"
    sentinel(cbroker.bootstrap, topic, 1)

    def compacted():
        recs = read_all(cbroker.bootstrap, topic)
        return len(recs) < produced and unique_keys(recs), recs
    recs = wait_until("the cleaner compacted once the lag passed", compacted)
    assert len(recs) == 30 + 2, "the latest of the 30 keys and the two sentinels"


def test_max_compaction_lag_cleans_a_log_whose_dirty_ratio_never_would(cbroker):
    topic = "overdue"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1,
                            {**COMPACTED, "min.cleanable.dirty.ratio": "1.0",
                             "max.compaction.lag.ms": "4000"})
    # Three rounds of updates into one segment, which the sentinel rolls: the first
    # cleaning finds the whole log dirty (ratio 1.0, which meets the minimum).
    items = [(b"key-%03d" % k, b"value-%03d-round-%d" % (k, r)) for r in range(3) for k in range(40)]
    for err, _ in produce(cbroker.bootstrap, topic, items):
        assert err is None, err
    time.sleep(0.25)
    sentinel(cbroker.bootstrap, topic, 0)
    wait_until("the first cleaning", lambda: (len(read_all(cbroker.bootstrap, topic)) == 41, None))
    # A few updates after it: dirty, but a small part of the log, far below ratio 1.0.
    time.sleep(0.25)
    updated = time.monotonic()
    for err, _ in produce(cbroker.bootstrap, topic, [(b"key-%03d" % k, b"late") for k in range(5)]):
        assert err is None, err
    time.sleep(0.25)
    sentinel(cbroker.bootstrap, topic, 1)  # rolls the segment of the updates
    time.sleep(1.0)
    recs = read_all(cbroker.bootstrap, topic)
    assert time.monotonic() - updated < 3.5, "too slow to test the lag"
    assert len(recs) == 41 + 5 + 1, "cleaned before max.compaction.lag.ms with the ratio unmet"

    def cleaned_again():
        recs = read_all(cbroker.bootstrap, topic)
        return len(recs) == 42 and unique_keys(recs), recs
    recs = wait_until("max.compaction.lag.ms forced a cleaning", cleaned_again)
    by_key = {k: v for _, k, v in recs}
    assert all(by_key[b"key-%03d" % k] == b"late" for k in range(5))
    assert by_key[b"key-010"] == b"value-010-round-2"


def produce_v9(topic: str, records: bytes) -> bytes:
    body = (wire.uvarint(0)                                  # transactional_id: null
            + struct.pack(">hi", -1, 15000)                  # acks=all, timeout_ms
            + wire.uvarint(2) + wire.compact_string(topic)   # one topic
            + wire.uvarint(2) + struct.pack(">i", 0)         # one partition: 0
            + wire.uvarint(len(records) + 1) + records + b"\x00"
            + b"\x00"                                        # topic tags
            + b"\x00")                                       # request tags
    return body


def test_produce_v9_names_each_keyless_record_of_a_refused_set_in_record_errors(cbroker):
    topic = "record-errors"
    rdkafka_io.create_topic(cbroker.bootstrap, topic, 1, COMPACTED)
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i, key in enumerate([b"a", None, b"c", None, b"e"]):
        builder.append(i, timestamp=now, key=key, value=b"v%d" % i, headers=[])
    r = wire.call(cbroker.port, wire.API_PRODUCE, 9, produce_v9(topic, bytes(builder.build())))
    assert r.uvarint() == 2 and r.string() == topic
    assert r.uvarint() == 2
    index, code = r.i32(), r.i16()
    base_offset, _append_time, _log_start = r.i64(), r.i64(), r.i64()
    errors = []
    for _ in range(r.uvarint() - 1):
        errors.append((r.i32(), r.string()))
        r.tags()
    message = r.string()
    assert (index, code, base_offset) == (0, INVALID_RECORD, -1)
    assert [i for i, _ in errors] == [1, 3], "the positions of the keyless records"
    assert all("without key" in m for _, m in errors), errors
    assert message and "without key" in message and topic in message
    # The set was refused whole: nothing of it was appended.
    assert rdkafka_io.high_watermarks(cbroker.bootstrap, topic, 1)[0] == (0, 0)
