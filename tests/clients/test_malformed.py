"""Bad input never takes the broker down (DESIGN.md, Protocol).

Each test first stores a known set of records with confluent-kafka, then
sends one kind of bad input on a raw socket, and then checks that

- the broker process is still running,
- a well-behaved client on another connection still produces and consumes,
- the records stored before are all still there, byte for byte.

Where the protocol has an answer (ApiVersions of an unknown version) the exact
bytes are checked; where it has none the broker must close the connection
rather than wait or allocate.
"""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

import rdkafka_io
import wire
from workload import check_story, make_messages

TOPIC = "steady"
PARTITIONS = 4


@pytest.fixture
def stored(broker):
    """The broker with 2,000 records stored in `steady` before any bad input."""
    rdkafka_io.create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    sent = make_messages(2000, keys=50, seed=31)
    config = rdkafka_io.producer_config(broker.bootstrap, compression_type="lz4")
    delivered = rdkafka_io.produce_all([config], [sent], TOPIC)
    return broker, sent, delivered


def assert_still_serving(broker, sent, delivered):
    """Alive, the old records intact, and a new client can produce and consume."""
    broker.assert_alive()
    more = make_messages(200, keys=50, seed=32, start=len(sent))  # each key's sequence goes on
    config = rdkafka_io.producer_config(broker.bootstrap)
    delivered_more = rdkafka_io.produce_all([config], [more], TOPIC, timeout=30)
    records = rdkafka_io.consume_all(broker.bootstrap, TOPIC, PARTITIONS, timeout=30)
    check_story(sent + more, records, partitions=PARTITIONS, delivered={**delivered, **delivered_more})
    broker.assert_alive()


def test_truncated_frame_then_disconnect(stored):
    """A frame that announces 100 bytes but delivers 20, then hangs up."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(struct.pack(">i", 100) + wire.header_v1(wire.API_METADATA, 4, 1)[:20])
    assert_still_serving(broker, sent, delivered)


def test_frame_length_over_100_mib_is_refused(stored):
    """A frame length of 200 MiB: the broker closes the connection at once
    instead of waiting for (or allocating) 200 MiB."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(struct.pack(">i", 200 * 1024 * 1024) + wire.header_v1(wire.API_METADATA, 4, 2))
        wire.wait_closed(sock)
    assert_still_serving(broker, sent, delivered)


@pytest.mark.parametrize("length", [-1, -2**31, 0], ids=["minus-one", "int32-min", "zero"])
def test_negative_or_empty_frame_length_is_refused(stored, length):
    """A negative frame length, or an empty frame that cannot hold a request
    header: the broker closes the connection."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(struct.pack(">i", length) + b"\x00" * 16)
        wire.wait_closed(sock)
    assert_still_serving(broker, sent, delivered)


def test_unknown_api_key(stored):
    """Api key 9999 does not exist: the broker closes the connection (it cannot
    know the header or response format), or at least answers with our
    correlation id; it never hangs."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.frame(wire.header_v1(9999, 0, 4242) + b"\x00" * 8))
        answer = wire.closed_or_answered(sock)
        if answer is not None:
            assert answer[4:8] == struct.pack(">i", 4242), f"answer to api key 9999: {answer[:32]!r}"
    assert_still_serving(broker, sent, delivered)


@pytest.mark.parametrize("api_key,name", [(wire.API_METADATA, "Metadata"), (wire.API_PRODUCE, "Produce"),
                                          (wire.API_FETCH, "Fetch")])
def test_unsupported_version_of_a_known_api(stored, api_key, name):
    """Version 99 of a known API: the broker closes the connection or answers
    with our correlation id; it never hangs or crashes."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.frame(wire.header_v2(api_key, 99, 777) + b"\x00" * 32))
        answer = wire.closed_or_answered(sock)
        if answer is not None:
            assert answer[4:8] == struct.pack(">i", 777), f"answer to {name} v99: {answer[:32]!r}"
    assert_still_serving(broker, sent, delivered)


def test_api_versions_v99_gets_a_v0_unsupported_version_answer(stored):
    """KIP-511 / KAFKA-3652: ApiVersions of a version the broker does not know
    is answered, not disconnected: a v0 response (correlation id, error 35
    UNSUPPORTED_VERSION, and the ApiVersions range it does support). The client
    then retries on the same connection with a version in that range."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.api_versions_request(99, 5150))
        correlation_id, error, ranges = wire.parse_api_versions_v0(wire.read_frame(sock))
        assert correlation_id == 5150
        assert error == wire.UNSUPPORTED_VERSION, f"error code {error}, expected 35"
        assert wire.API_API_VERSIONS in ranges, f"the answer must list ApiVersions' own range: {ranges}"
        lo, hi = ranges[wire.API_API_VERSIONS]
        assert lo == 0 and hi >= 3, f"ApiVersions range {lo}..{hi}: clients need 0 and 3"

        # Same connection, a version from the advertised range: a full answer.
        sock.sendall(wire.api_versions_request(0, 5151))
        correlation_id, error, ranges = wire.parse_api_versions_v0(wire.read_frame(sock))
        assert (correlation_id, error) == (5151, 0)
        for key in (wire.API_PRODUCE, wire.API_FETCH, wire.API_METADATA, wire.API_API_VERSIONS):
            assert key in ranges, f"ApiVersions v0 does not list api key {key}: {ranges}"
        assert ranges[wire.API_PRODUCE][0] == 0, "Produce must advertise min version 0 (KAFKA-18659)"
    assert_still_serving(broker, sent, delivered)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_garbage_bytes(stored, seed):
    """Random bytes, with and without a plausible frame length in front. The
    broker may wait for more, answer or close, but must stay healthy."""
    broker, sent, delivered = stored
    rng = random.Random(seed)
    framed = wire.frame(rng.randbytes(64))
    raw = rng.randbytes(4096)
    for payload in (framed, raw):
        with wire.connect(broker.port) as sock:
            sock.sendall(payload)
            try:
                wire.closed_or_answered(sock, timeout=1.0)
            except AssertionError:
                pass  # still waiting for the rest of a frame: allowed
    assert_still_serving(broker, sent, delivered)


def test_disconnect_in_the_middle_of_a_produce_request(stored):
    """Half of a real Produce request, then the client goes away (with a TCP
    reset, as a crashed client would). Nothing of it may be stored."""
    broker, sent, delivered = stored
    body = struct.pack(">hii", -1, 30000, 1) + wire.string(TOPIC) + struct.pack(">i", 1)
    body += struct.pack(">ii", 0, 4000) + b"\x00" * 2000   # partition 0, 4000 bytes of records promised
    request = wire.frame(wire.header_v1(wire.API_PRODUCE, 7, 99) + body)
    with wire.connect(broker.port) as sock:
        sock.sendall(request[:len(request) // 2])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert_still_serving(broker, sent, delivered)


def test_disconnect_while_a_fetch_is_waiting(stored):
    """A Fetch at the end of the log long-polls (max_wait 10 s); the client
    hangs up while it waits. Records produced afterwards wake the waiter of a
    connection that is gone; the broker must carry on."""
    broker, sent, delivered = stored
    ends = rdkafka_io.high_watermarks(broker.bootstrap, TOPIC, PARTITIONS)
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.fetch_v4_request(1, TOPIC, {p: ends[p][1] for p in range(PARTITIONS)},
                                           max_wait_ms=10_000, min_bytes=1))
        time.sleep(0.3)
    assert_still_serving(broker, sent, delivered)


def test_many_pipelined_requests_then_disconnect(stored):
    """200 pipelined ApiVersions requests, then hang up without reading the
    answers: the broker must drop the queued responses, not block."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(b"".join(wire.api_versions_request(3, i) for i in range(200)))
    # And once more reading them all: answers in request order.
    with wire.connect(broker.port) as sock:
        sock.sendall(b"".join(wire.api_versions_request(0, 1000 + i) for i in range(50)))
        for i in range(50):
            correlation_id, error, _ = wire.parse_api_versions_v0(wire.read_frame(sock))
            assert (correlation_id, error) == (1000 + i, 0)
    assert_still_serving(broker, sent, delivered)


# --- counts that lie (found by the `request` fuzz target, issue 14 item 4) -------------

API_JOIN_GROUP = 11


def huge_count_requests() -> dict[str, bytes]:
    """Requests whose array count claims ~2 billion elements that are not there."""
    many = struct.pack(">i", 0x7FFFFFF0)
    join_v5 = (wire.string("g") + struct.pack(">ii", 30000, 30000) + wire.string("")
               + wire.string(None) + wire.string("consumer") + many)
    return {
        "JoinGroup v5 protocols": wire.header_v1(API_JOIN_GROUP, 5, 1) + join_v5,
        "Metadata v4 topics": wire.header_v1(wire.API_METADATA, 4, 2) + many + b"\x01",
        "Metadata v9 topics (compact)": wire.header_v2(wire.API_METADATA, 9, 3)
        + wire.uvarint(0x7FFFFFF0) + b"\x00",
    }


@pytest.mark.parametrize("name", list(huge_count_requests()))
def test_an_array_count_of_two_billion_is_refused_without_allocating_it(stored, name):
    """kafka-protocol reserved room for every element a count claimed before reading
    one: this 60-byte JoinGroup made the broker ask for 90 GB and abort (one frame from
    any client stopped every shard). Now the decode fails at the end of the frame and
    only that connection is closed."""
    broker, sent, delivered = stored
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.frame(huge_count_requests()[name]))
        wire.closed_or_answered(sock)
    assert_still_serving(broker, sent, delivered)


def crc32c(data: bytes) -> int:
    from kafka.record.util import calc_crc32c
    return calc_crc32c(data)


def zigzag(n: int) -> bytes:
    return wire.uvarint((n << 1) ^ (n >> 63))


def batch_with_a_record_claiming_headers(headers: int, ts: int) -> bytes:
    """A valid gzip RecordBatch v2 (CRC-32C right) of one record whose header count says
    `headers` but carries none. (Uncompressed, the broker's validation reads the records
    and refuses it; inside a compressed batch it is stored as the producer sent it.)"""
    import gzip
    body = b"\x00" + zigzag(0) + zigzag(0) + zigzag(-1) + zigzag(4) + b"liar" + zigzag(headers)
    record = gzip.compress(zigzag(len(body)) + body)
    after_crc = (struct.pack(">hiqqqhii", 1, 0, ts, ts, -1, -1, -1, 1) + record)
    head = struct.pack(">ib", 0, 2)  # leader epoch, magic; length and crc around it
    batch_len = len(head) + 4 + len(after_crc)
    return struct.pack(">qi", 0, batch_len) + head + struct.pack(">I", crc32c(after_crc)) + after_crc


def test_a_stored_record_claiming_a_billion_headers_does_not_stop_timestamp_lookups(broker):
    """A producer may store a batch whose record claims 2^30 headers (the batch CRC is
    the producer's, so it is valid). ListOffsets by timestamp decodes stored batches:
    the record decoder reserved room for every header and the broker aborted — at every
    restart too, on the next lookup. Now the lookup answers (with the batch's own offset)
    and the broker keeps serving."""
    from confluent_kafka import Consumer, TopicPartition
    rdkafka_io.create_topic(broker.bootstrap, "liars", 1)
    ts = int(time.time() * 1000)
    records = batch_with_a_record_claiming_headers(1 << 30, ts)
    produce = (wire.header_v1(wire.API_PRODUCE, 3, 9) + wire.string(None)
               + struct.pack(">hii", 1, 10000, 1) + wire.string("liars")
               + struct.pack(">iii", 1, 0, len(records)) + records)
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.frame(produce))
        answer = wire.read_frame(sock)
    # correlation id, topics[1], name, partitions[1], index, error code
    error = struct.unpack(">h", answer[4 + 4 + 2 + len("liars") + 4 + 4:][:2])[0]
    assert error == 0, f"the batch was refused with error {error}: the decoder is not reached"
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "liars"})
    [found] = c.offsets_for_times([TopicPartition("liars", 0, ts)], timeout=15)
    c.close()
    assert found.error is None and found.offset == 0
    broker.assert_alive()
