"""ListOffsets' special timestamps (issue 12, item 10) with the admin clients that
send them: confluent-kafka's AdminClient (librdkafka 2.16, ListOffsets v7+ for
OffsetSpec.max_timestamp()) and kafka-python 3.0's list_partition_offsets
(ListOffsets v10, every OffsetSpec).

Before the change MAX_TIMESTAMP (-3) answered UNSUPPORTED_VERSION and LATEST_TIERED
(-5) INVALID_REQUEST.
"""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka import TopicPartition as CTP
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin import OffsetSpec as COffsetSpec
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.protocol.consumer.offsets import OffsetSpec

from kafka_python_io import create_topic

TIMESTAMPS = [1_000, 5_000, 3_000, 5_000, 2_000]


def produce_with_timestamps(bootstrap: str, topic: str) -> None:
    """One record per batch (linger 0, flush after each), with the given CreateTimes."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for ts in TIMESTAMPS:
        p.produce(topic, value=str(ts).encode(), partition=0, timestamp=ts)
        p.flush(10)
    assert p.flush(10) == 0


def test_list_offsets_max_timestamp_and_earliest_local(broker):
    """Records with CreateTimes 1000, 5000, 3000, 5000, 2000: MAX_TIMESTAMP is the
    first record with 5000 (offset 1), for confluent-kafka and kafka-python alike;
    EARLIEST_LOCAL is the log start (also after DeleteRecords moves it), LATEST_TIERED
    is -1 as on a Kafka without tiered storage; an empty partition has no max
    timestamp (-1, -1)."""
    create_topic(broker.bootstrap, "maxts", 2)
    produce_with_timestamps(broker.bootstrap, "maxts")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    tp0, tp1 = CTP("maxts", 0), CTP("maxts", 1)
    futures = admin.list_offsets({tp0: COffsetSpec.max_timestamp()}, request_timeout=15)
    info = futures[tp0].result()
    assert (info.offset, info.timestamp) == (1, 5_000)

    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    try:
        t0, t1 = TopicPartition("maxts", 0), TopicPartition("maxts", 1)
        got = kp.list_partition_offsets({t0: OffsetSpec.MAX_TIMESTAMP})
        assert (got[t0].offset, got[t0].timestamp) == (1, 5_000)
        got = kp.list_partition_offsets({t1: OffsetSpec.MAX_TIMESTAMP})
        assert (got[t1].offset, got[t1].timestamp) == (-1, -1)

        kp.delete_records({t0: 2})
        got = kp.list_partition_offsets({t0: OffsetSpec.EARLIEST_LOCAL})
        assert got[t0].offset == 2
        got = kp.list_partition_offsets({t0: OffsetSpec.LATEST_TIERED})
        assert got[t0].offset == -1
        # The max-timestamp record at offset 1 is gone; the other 5000 is at 3.
        got = kp.list_partition_offsets({t0: OffsetSpec.MAX_TIMESTAMP})
        assert (got[t0].offset, got[t0].timestamp) == (3, 5_000)
    finally:
        kp.close()
    futures = admin.list_offsets({tp1: COffsetSpec.earliest()}, request_timeout=15)
    assert futures[tp1].result().offset == 0
