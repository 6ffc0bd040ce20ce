"""Zero-copy fetch and long-polling, seen from outside the broker.

Fetched record bytes go from the segment files to the socket with sendfile
(counted in sluice_fetch_sendfile_bytes_total); a slow consumer fills its
socket, and the broker waits for it to drain without blocking the shard. The
copy path (--fetch-zero-copy false) serves the very same bytes. Long-polling
fetches wait for an append, not for their timeout, and cost an idle broker
next to nothing.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import wire
from conftest import cpu_seconds

RECORD_BYTES = 16 * 1024
RECORDS = 2048            # 32 MiB in one partition


def payload(i: int) -> bytes:
    head = f"record-{i:08d}-".encode()
    return head + bytes([i % 251]) * (RECORD_BYTES - len(head))


def produce(broker, topic: str, count: int, partitions: int = 1) -> None:
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                  "compression.type": "none", "acks": "all"})
    failed = []
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=payload(i), partition=i % partitions,
                          on_delivery=lambda err, _m: err and failed.append(err))
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "producer did not deliver everything within 60 s"
    assert not failed, failed[:3]


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at `pos`: (value, next position)."""
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos


def records_of(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in a Fetch v4 response of one partition,
    uncompressed batches only."""
    pos = 8
    (ntopics,) = struct.unpack_from(">i", data, pos); pos += 4
    assert ntopics == 1
    (name_len,) = struct.unpack_from(">h", data, pos); pos += 2 + name_len
    (nparts,) = struct.unpack_from(">i", data, pos); pos += 4
    assert nparts == 1
    _p, error, _hwm, _lso = struct.unpack_from(">ihqq", data, pos); pos += 22
    assert error == 0, f"fetch error {error}"
    (naborted,) = struct.unpack_from(">i", data, pos); pos += 4 + max(naborted, 0) * 16
    (size,) = struct.unpack_from(">i", data, pos); pos += 4
    recs = data[pos:pos + size]
    assert len(recs) == size, f"records truncated: {len(recs)} of {size}"
    out, at = [], 0
    while at + 61 <= len(recs):
        base, blen = struct.unpack_from(">qi", recs, at)
        end = at + 12 + blen
        if end > len(recs):
            break
        assert struct.unpack_from(">h", recs, at + 21)[0] & 7 == 0, "compressed batch"
        (count,) = struct.unpack_from(">i", recs, at + 57)
        r = at + 61
        for _ in range(count):
            length, r = varint(recs, r)
            stop = r + length
            r += 1  # attributes
            _ts, r = varint(recs, r)
            delta, r = varint(recs, r)
            klen, r = varint(recs, r)
            r += max(klen, 0)
            vlen, r = varint(recs, r)
            out.append((base + delta, recs[r:r + vlen]))
            r = stop
        at = end
    return out


def slow_fetch(port: int, topic: str) -> bytes:
    """One Fetch v4 of the whole partition through a small receive buffer,
    read slowly, so the broker's side of the socket fills up again and again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(wire.fetch_v4_request(1, topic, {0: 0}, max_wait_ms=0,
                                           partition_max_bytes=64 * 1024 * 1024,
                                           max_bytes=64 * 1024 * 1024))
        (size,) = struct.unpack(">i", wire.recv_exact(sock, 4))
        data = bytearray()
        while len(data) < size:
            chunk = sock.recv(min(256 * 1024, size - len(data)))
            assert chunk, f"connection closed after {len(data)} of {size} bytes"
            data += chunk
            time.sleep(0.002)
        return bytes(data)
    finally:
        sock.close()


def check_records(data: bytes) -> None:
    got = records_of(data)
    assert [o for o, _ in got] == list(range(RECORDS)), "offsets are not 0..N in order"
    for offset, value in got:
        assert value == payload(offset), f"record {offset} differs from what was produced"


@pytest.mark.slow
def test_a_slow_consumer_gets_every_byte_by_sendfile_and_the_copy_path_agrees(broker_factory):
    """32 MiB in one partition, fetched in one response by a consumer that
    reads slowly through a 64 KiB receive buffer: every record arrives intact
    and in order, the bytes were sent by sendfile (none copied), and the send
    waited for the full socket. Restarted with --fetch-zero-copy false, the
    broker sends byte-identical records through memory instead."""
    broker = broker_factory(flush="never")
    produce(broker, "zc", RECORDS)

    zero_copy = slow_fetch(broker.port, "zc")
    check_records(zero_copy)
    sent = sum(broker.per_shard("sluice_fetch_sendfile_bytes_total").values())
    copied = sum(broker.per_shard("sluice_fetch_copied_bytes_total").values())
    waits = sum(broker.per_shard("sluice_fetch_socket_waits_total").values())
    print(f"zero copy: {sent / 2**20:.1f} MiB by sendfile, {copied} bytes copied, {waits:.0f} socket-full waits")
    assert sent >= RECORDS * RECORD_BYTES, f"only {sent} bytes went by sendfile"
    assert copied == 0, f"{copied} bytes were copied on the zero-copy path"
    assert waits > 0, "the slow consumer never filled the socket: the wait path was not exercised"

    broker.stop()
    broker.extra_args = ("--fetch-zero-copy", "false")
    broker.start()
    copy = slow_fetch(broker.port, "zc")
    assert copy == zero_copy, "the copy path and the zero-copy path sent different responses"
    assert sum(broker.per_shard("sluice_fetch_sendfile_bytes_total").values()) == 0
    assert sum(broker.per_shard("sluice_fetch_copied_bytes_total").values()) >= RECORDS * RECORD_BYTES


@pytest.mark.slow
def test_a_hundred_idle_long_polls_cost_next_to_nothing_and_an_append_wakes_them(broker):
    """100 connections long-poll an empty partition (max_wait 60 s) for 10 s:
    the broker's CPU time over those 10 s is measured from /proc and printed.
    Then one record is produced, and every waiting fetch returns it — long
    before its 60 s wait would have ended (the socket timeout is 30 s)."""
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("idle", value=b"first", partition=0)
    assert p.flush(30) == 0
    socks = []
    for i in range(100):
        s = wire.connect(broker.port, timeout=30)
        s.sendall(wire.fetch_v4_request(i, "idle", {0: 1}, max_wait_ms=60_000))
        socks.append(s)
    time.sleep(1)  # every fetch has reached the broker and parked
    before = cpu_seconds(broker.proc.pid)
    time.sleep(10)
    used = cpu_seconds(broker.proc.pid) - before
    print(f"broker CPU over 10 s with 100 parked long-polls: {used:.2f} s ({used / 10:.1%} of one core)")

    p.produce("idle", value=b"wake up", partition=0)
    assert p.flush(30) == 0
    for s in socks:
        batches = wire.fetch_v4_batches(wire.read_frame(s))
        assert [b["base_offset"] for b in batches[0]] == [1], batches
        s.close()


@pytest.mark.slow
def test_copied_fetches_stay_within_the_fetch_budget_and_consumers_still_get_everything(broker_factory):
    """With zero copy off, one shard and a 4 MiB memory budget (1 MiB of
    copied fetch data), a fetch of four full partitions gets the first one whole
    and the others deferred (answered empty, counted in
    sluice_fetch_budget_deferrals_total); a consumer then still reads every
    record of every partition."""
    broker = broker_factory(flush="never", shards=1, extra_args=(
        "--fetch-zero-copy", "false", "--memory-budget", str(4 * 2**20), "--default-partitions", "4"))
    produce(broker, "budget", 1024, partitions=4)

    sock = wire.connect(broker.port, timeout=30)
    sock.sendall(wire.fetch_v4_request(1, "budget", {p: 0 for p in range(4)}, max_wait_ms=0,
                                       partition_max_bytes=8 * 2**20, max_bytes=64 * 2**20))
    batches = wire.fetch_v4_batches(wire.read_frame(sock))
    sock.close()
    with_data = [p for p in range(4) if batches.get(p)]
    assert with_data == [0], f"partitions with records in one budget-bound response: {with_data}"
    deferred = sum(broker.per_shard("sluice_fetch_budget_deferrals_total").values())
    assert deferred >= 3, f"only {deferred} partition reads were deferred"

    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "budget-check",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("budget", p, 0) for p in range(4)])
    seen = set()
    deadline = time.monotonic() + 60
    while len(seen) < 1024 and time.monotonic() < deadline:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        seen.add((m.partition(), m.offset()))
        assert m.value() == payload(m.offset() * 4 + m.partition())
    c.close()
    assert len(seen) == 1024, f"consumed {len(seen)} of 1024 records"


def test_a_batch_over_every_limit_is_still_returned_whichever_shard_the_connection_is_on(broker):
    """KIP-74: the first batch of a fetch comes back whole even when it is
    larger than partition_max_bytes and max_bytes, so a consumer never stalls
    on a big batch. Eight connections (spread over both shards by the kernel;
    the partition has one owner) each get the 16 KiB record with 100-byte limits."""
    produce(broker, "big", 1)
    for i in range(8):
        sock = wire.connect(broker.port)
        sock.sendall(wire.fetch_v4_request(i, "big", {0: 0}, max_wait_ms=0,
                                           partition_max_bytes=100, max_bytes=100))
        got = records_of(wire.read_frame(sock))
        sock.close()
        assert got == [(0, payload(0))], f"connection {i}: {len(got)} records"


def parked_hops(broker) -> float:
    """Trips of parked fetches to their owners (and the cancels), over every shard."""
    return sum(v for labels, v in broker.metric("sluice_mesh_calls_total").items()
               if dict(labels)["message"] in ("partition.read_or_wait", "partition.cancel_wait"))


def test_a_long_poll_over_both_shards_waits_for_min_bytes_across_them_without_spinning(broker):
    """A fetch of two partitions with different owner shards parks on both owners
    (partition::long_poll). With min_bytes above one record and below two, a record
    on one partition does not answer it: it keeps waiting, without trips back and forth
    to the owners (a re-wait that returned at once on the bytes already there would make
    thousands), and the record on the other partition answers it with both."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("spread", 2, 1)])["spread"].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for partition in (0, 1):
        p.produce("spread", value=payload(partition)[:1024], partition=partition)
    assert p.flush(30) == 0
    owners = {part: shard for (topic, part), (shard, _) in broker.partition_hwms().items()
              if topic == "spread"}
    assert owners[0] != owners[1], f"both partitions on one shard: {owners}"

    sock = wire.connect(broker.port, timeout=30)
    sock.sendall(wire.fetch_v4_request(1, "spread", {0: 1, 1: 1}, max_wait_ms=20_000,
                                       min_bytes=1500))
    time.sleep(1)
    hops = parked_hops(broker)
    p.produce("spread", value=payload(2)[:1024], partition=0)
    assert p.flush(30) == 0
    sock.settimeout(2)
    with pytest.raises(socket.timeout):
        sock.recv(1)  # one record is not min_bytes: still waiting
    spent = parked_hops(broker) - hops
    assert spent <= 8, f"{spent} trips to the owners while one fetch waited"

    p.produce("spread", value=payload(3)[:1024], partition=1)
    assert p.flush(30) == 0
    sock.settimeout(10)
    batches = wire.fetch_v4_batches(wire.read_frame(sock))
    sock.close()
    assert {part: [b["base_offset"] for b in bs] for part, bs in batches.items()} == {0: [1], 1: [1]}
