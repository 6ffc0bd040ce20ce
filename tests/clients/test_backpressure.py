"""Bounded memory: produce credit, a memory budget, idle connections.

With a small --memory-budget the broker's produce credit (a quarter of the
budget, split among shards) is far below what several producers push at once;
the broker stops reading their sockets until credit returns, and the producers
must still all finish with every acknowledged record stored.
"""

from __future__ import annotations

import random
import struct
import time

import rdkafka_io
import wire
from workload import Message, check_story, make_messages, split_by_key

# The smallest budget the broker accepts: 4 MiB, so 512 KiB of produce credit per
# shard with 2 shards — less than one librdkafka batch of 1 MB.
SMALL_BUDGET = 4 << 20
PARTITIONS = 6
UNKNOWN_TOPIC_OR_PARTITION = 3


def credit_waits(broker) -> float:
    return sum(broker.per_shard("sluice_produce_credit_waits_total").values())


def test_producers_pushing_hard_into_a_small_budget_all_complete_with_nothing_lost(broker_factory):
    """Four idempotent producers send 40,000 keyed messages (about 16 MB) with
    acks=all to a flush=always broker whose produce credit is 512 KiB per shard.
    They all finish without a failed delivery; reading the topic back gives every
    message exactly once, at the offset its delivery report named; the broker
    counted requests that waited for credit, and once all is done no credit is
    held any more."""
    broker = broker_factory(flush="always", extra_args=("--memory-budget", str(SMALL_BUDGET)))
    topic = "pressed"
    rdkafka_io.create_topic(broker.bootstrap, topic, PARTITIONS)
    assert credit_waits(broker) == 0

    sent = make_messages(40_000, seed=7)
    configs = [rdkafka_io.producer_config(broker.bootstrap, enable_idempotence=True,
                                          message_timeout_ms=240_000)
               for _ in range(4)]
    delivered = rdkafka_io.produce_all(configs, split_by_key(sent, 4), topic, timeout=240)
    assert len(delivered) == len(sent)

    waits = credit_waits(broker)
    assert waits > 0, "producers never had to wait for credit: the budget did not bite"
    in_use = broker.per_shard("sluice_produce_credit_in_use_bytes")
    assert set(in_use) == {0, 1} and all(v == 0 for v in in_use.values()), in_use

    records = rdkafka_io.consume_all(broker.bootstrap, topic, PARTITIONS)
    check_story(sent, records, partitions=PARTITIONS, delivered=delivered)
    hwms = rdkafka_io.high_watermarks(broker.bootstrap, topic, PARTITIONS)
    acked_per_partition = {p: 0 for p in range(PARTITIONS)}
    for partition, _offset in delivered.values():
        acked_per_partition[partition] += 1
    assert {p: hw for p, (_lo, hw) in hwms.items()} == acked_per_partition


def test_a_batch_larger_than_the_whole_produce_budget_still_goes_through(broker_factory):
    """One producer sends a single ~2 MB batch to a broker whose produce credit
    is 512 KiB per shard: the request takes the whole budget and is appended,
    several times in a row, instead of waiting forever."""
    broker = broker_factory(flush="always", extra_args=("--memory-budget", str(SMALL_BUDGET)))
    topic = "big-batches"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1, {"max.message.bytes": str(8 << 20)})
    # 2,000 incompressible 1000-byte values (~2 MB): one batch per round below.
    rng = random.Random(9)
    sent = [Message(i, b"k", i, rng.randbytes(1000)) for i in range(2_000)]
    config = rdkafka_io.producer_config(
        broker.bootstrap, linger_ms=10_000, batch_size=8_000_000, message_max_bytes=8_000_000,
        batch_num_messages=100_000, compression_type="none")
    for round_ in range(3):
        delivered = rdkafka_io.produce_all([config], [sent], topic, timeout=120,
                                           metadata_first=True)
        assert len(delivered) == len(sent), f"round {round_}"
    _lo, hw = rdkafka_io.high_watermarks(broker.bootstrap, topic, 1)[0]
    assert hw == 3 * len(sent)
    # Few requests carried those 6 MB: on average each was over the 512 KiB of credit
    # a shard has. (The linger outlasts the loop and flush sends at once, and the producer
    # knows the partition before its first message, so each round is one request; a
    # stalled machine may still split one, which this allows.)
    produce_requests = sum(v for labels, v in
                           broker.metric("sluice_request_latency_seconds_count").items()
                           if dict(labels).get("api") == "Produce")
    sent_bytes = 3 * sum(len(m.value) for m in sent)
    assert 1 <= produce_requests < sent_bytes / (SMALL_BUDGET / 4 / 2), produce_requests


def test_an_idle_connection_is_closed_after_the_idle_timeout(broker_factory):
    """With --idle-connection-timeout-ms 1000, a connection that sends one
    request and then nothing is closed by the broker; one that keeps sending
    requests more often than that stays open and answered."""
    broker = broker_factory(extra_args=("--idle-connection-timeout-ms", "1000"))
    idle = wire.connect(broker.port)
    busy = wire.connect(broker.port)
    try:
        idle.sendall(wire.api_versions_request(0, 1))
        cid, err, _ = wire.parse_api_versions_v0(wire.read_frame(idle))
        assert (cid, err) == (1, 0)

        # The busy one sends a request every 100 ms for 3 s (three timeouts).
        deadline = time.monotonic() + 3.0
        n = 0
        while time.monotonic() < deadline:
            n += 1
            busy.sendall(wire.api_versions_request(0, n))
            cid, err, _ = wire.parse_api_versions_v0(wire.read_frame(busy))
            assert (cid, err) == (n, 0)
            time.sleep(0.1)

        # By now the idle one is past its timeout; it must be (or soon be) closed.
        wire.wait_closed(idle, timeout=30)
        busy.sendall(wire.api_versions_request(0, n + 1))
        cid, _, _ = wire.parse_api_versions_v0(wire.read_frame(busy))
        assert cid == n + 1, "the busy connection was closed as idle"
    finally:
        idle.close()
        busy.close()


def test_a_client_over_its_byte_rate_quota_is_told_to_back_off(broker_factory):
    """With --producer-byte-rate 1000000, a client id that produces 12 MB as fast
    as it can is over its quota: responses carry throttle_time_ms (librdkafka
    reports it through throttle_cb), and every message is still delivered."""
    broker = broker_factory(extra_args=("--producer-byte-rate", "1000000"))
    topic = "quota"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    rng = random.Random(11)
    sent = [Message(i, b"k", i, rng.randbytes(1000)) for i in range(12_000)]
    throttles = []
    config = rdkafka_io.producer_config(broker.bootstrap, compression_type="none")
    config["throttle_cb"] = lambda event: throttles.append(event.throttle_time)
    delivered = rdkafka_io.produce_all([config], [sent], topic, timeout=120)
    assert len(delivered) == len(sent)
    assert throttles and max(throttles) > 0, f"no throttle reported: {throttles}"


def produce_v3(correlation_id: int, topic: str, partition: int, records: bytes, acks: int = 1) -> bytes:
    """A framed Produce v3 request for one partition (non-flexible, header v1)."""
    body = (wire.string(None) + struct.pack(">hi", acks, 30_000)
            + struct.pack(">i", 1) + wire.string(topic)
            + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(records)) + records)
    return wire.frame(wire.header_v1(wire.API_PRODUCE, 3, correlation_id) + body)


def produce_v3_error(data: bytes) -> tuple[int, int]:
    """(correlation id, error code of the one partition) of a Produce v3 response."""
    (cid,) = struct.unpack_from(">i", data, 0)
    (name_len,) = struct.unpack_from(">h", data, 8)
    at = 10 + name_len + 4  # topic name, then the partitions array length
    _partition, error = struct.unpack_from(">ih", data, at)
    return cid, error


def test_credit_comes_back_after_errors_and_abandoned_requests(broker_factory):
    """Produce requests that fail (corrupt records, unknown partition) or are
    abandoned half-sent — one of them larger than the whole 512 KiB credit of a
    shard — all give their credit back: afterwards no shard holds any, and a
    producer still gets its messages through."""
    broker = broker_factory(extra_args=("--memory-budget", str(SMALL_BUDGET)))
    topic = "errors"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)

    sock = wire.connect(broker.port)
    try:
        # 200 KB of zeros: no valid record batch.
        sock.sendall(produce_v3(1, topic, 0, b"\0" * 200_000))
        cid, error = produce_v3_error(wire.read_frame(sock))
        assert cid == 1 and error != 0
        sock.sendall(produce_v3(2, topic, 99, b"\0" * 100))
        assert produce_v3_error(wire.read_frame(sock)) == (2, UNKNOWN_TOPIC_OR_PARTITION)
    finally:
        sock.close()
    for size in (300_000, 3_000_000):
        half = wire.connect(broker.port)
        request = produce_v3(3, topic, 0, b"\0" * size)
        half.sendall(request[: len(request) // 2])
        half.close()

    deadline = time.monotonic() + 30
    while True:
        in_use = broker.per_shard("sluice_produce_credit_in_use_bytes")
        if set(in_use) == {0, 1} and not any(in_use.values()):
            break
        assert time.monotonic() < deadline, f"credit still held: {in_use}"
        time.sleep(0.1)
    sent = [Message(i, b"k", i, b"v" * 100) for i in range(100)]
    delivered = rdkafka_io.produce_all([rdkafka_io.producer_config(broker.bootstrap)], [sent], topic,
                                       timeout=60)
    assert len(delivered) == len(sent)


def test_a_client_that_stalls_in_the_middle_of_a_large_produce_is_closed_and_its_credit_returned(broker_factory):
    """A client announces a 3 MB Produce (more than the 512 KiB credit of a
    shard, so it takes all of it), sends half, and then nothing while keeping the
    connection open. With --idle-connection-timeout-ms 1000 the broker closes it,
    the credit comes back, and other producers go on."""
    broker = broker_factory(extra_args=("--memory-budget", str(SMALL_BUDGET),
                                        "--idle-connection-timeout-ms", "1000"))
    topic = "stalled"
    rdkafka_io.create_topic(broker.bootstrap, topic, 1)
    stalled = wire.connect(broker.port)
    try:
        request = produce_v3(1, topic, 0, b"\0" * 3_000_000)
        stalled.sendall(request[: len(request) // 2])
        wire.wait_closed(stalled, timeout=60)
    finally:
        stalled.close()
    in_use = broker.per_shard("sluice_produce_credit_in_use_bytes")
    assert set(in_use) == {0, 1} and not any(in_use.values()), in_use
    sent = [Message(i, b"k", i, b"v" * 100) for i in range(100)]
    delivered = rdkafka_io.produce_all([rdkafka_io.producer_config(broker.bootstrap)], [sent], topic,
                                       timeout=60)
    assert len(delivered) == len(sent)
