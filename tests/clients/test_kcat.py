"""kcat 1.7.1 (Debian's, on librdkafka 2.0.2) against Sluice.

kcat is the oldest client here: Produce v7, Fetch v11, ListOffsets v2,
Metadata v4, all non-flexible. librdkafka 2.0.2 also decides features from
single versions inside the broker's advertised ranges (KAFKA-COMPAT.md 4):
gzip/snappy/lz4 are only used if Produce v0 is advertised, so the codec of
what kcat sent is checked here as well as the data.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict

import rdkafka_io
import wire
from workload import CODECS, Record, check_story, make_messages, split_by_key

PARTITIONS = 8
KCAT = shutil.which("kcat") or "kcat"
FORMAT = r"%p\t%o\t%T\t%k\t%S\t%s\n"


def kcat(broker, *args: str, input: bytes | None = None, timeout: float = 60) -> str:
    """Run kcat against the broker; fail the test on a non-zero exit."""
    cmd = [KCAT, "-b", broker.bootstrap, *args]
    result = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} exited {result.returncode}\nstderr: {result.stderr.decode(errors='replace')[-3000:]}")
    return result.stdout.decode()


def kcat_consume_all(broker, topic: str) -> list[Record]:
    """kcat -C -e -o beginning over all partitions, one line per record."""
    out = kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
               "-X", "check.crcs=true", "-f", FORMAT, timeout=120)
    records = []
    for line in out.splitlines():
        partition, offset, ts, key, size, value = line.split("\t")
        assert int(size) == len(value), f"payload length {size} but printed {len(value)}: {line[:80]}"
        records.append(Record(int(partition), int(offset), key.encode(), value.encode(), int(ts)))
    return records


def test_keyed_produce_in_four_codecs_and_consume_back(broker):
    """kcat -P with -K: keys sends 20,000 keyed messages, a quarter in each
    codec (-z gzip|snappy|lz4|zstd) with the murmur2 partitioner; kcat -C -e
    from the beginning reads them all back once, in order per key, byte for
    byte, at offsets 0..n-1 per partition."""
    topic = "kcat-orders"
    rdkafka_io.create_topic(broker.bootstrap, topic, PARTITIONS)
    sent = make_messages(20_000, printable=True, seed=21)
    for codec, part in zip(CODECS, split_by_key(sent, len(CODECS))):
        lines = b"".join(m.key + b":" + m.value + b"\n" for m in part)
        kcat(broker, "-P", "-t", topic, "-K:", "-z", codec,
             "-X", "topic.partitioner=murmur2_random", "-X", "linger.ms=20",
             "-X", "batch.num.messages=5000", "-X", "topic.request.required.acks=-1",
             input=lines)
    check_story(sent, kcat_consume_all(broker, topic), partitions=PARTITIONS)


def test_kcat_batches_use_the_requested_codec(broker):
    """librdkafka 2.0.2 only compresses with gzip/snappy/lz4 if the broker
    advertises Produce v0 (KAFKA-18659); otherwise it silently sends them
    uncompressed. kcat -z <codec> into one partition per codec, then a raw
    Fetch v4 shows the compression id in each stored batch's attributes."""
    topic = "kcat-codecs"
    rdkafka_io.create_topic(broker.bootstrap, topic, len(CODECS))
    for partition, codec in enumerate(CODECS):
        payload = b"".join(b"%s-%05d-%s\n" % (codec.encode(), i, b"x" * 200) for i in range(200))
        kcat(broker, "-P", "-t", topic, "-p", str(partition), "-z", codec, "-X", "linger.ms=50",
             input=payload)

    codec_ids = {"gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
    with wire.connect(broker.port) as sock:
        sock.sendall(wire.fetch_v4_request(7, topic, {p: 0 for p in range(len(CODECS))}))
        batches = wire.fetch_v4_batches(wire.read_frame(sock))
    for partition, codec in enumerate(CODECS):
        found = batches[partition]
        assert found, f"partition {partition}: no batches fetched"
        assert all(b["magic"] == 2 for b in found), f"partition {partition}: {found}"
        got = sorted({b["attributes"] & 7 for b in found})
        assert got == [codec_ids[codec]], (
            f"kcat -z {codec}: stored batches have compression ids {got}, expected "
            f"{codec_ids[codec]} (0 means kcat sent them uncompressed)")


def test_metadata_listing(broker):
    """kcat -L (Metadata v4) lists the one broker, our topic and all its
    partitions, each led by that broker."""
    topic = "kcat-meta"
    rdkafka_io.create_topic(broker.bootstrap, topic, 6)
    md = json.loads(kcat(broker, "-L", "-J", "-t", topic))
    assert [b["name"] for b in md["brokers"]] == [broker.bootstrap], md["brokers"]
    (node,) = md["brokers"]
    (t,) = md["topics"]
    assert t["topic"] == topic and "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == list(range(6))
    assert all(p["leader"] == node["id"] for p in t["partitions"]), t["partitions"]

    text = kcat(broker, "-L")
    assert f'topic "{topic}" with 6 partitions' in text, text


def test_offset_lookup_by_timestamp(broker):
    """kcat -Q -t topic:partition:ts (ListOffsets v2) answers, per partition,
    the first offset whose timestamp is at or after ts, and -1 past the end."""
    topic = "kcat-timed"
    partitions = 4
    rdkafka_io.create_topic(broker.bootstrap, topic, partitions)
    sent = make_messages(4000, keys=100, printable=True, seed=22)
    # Four runs of kcat, so the timestamps have distinct steps between them.
    for i, part in enumerate(split_by_key(sent, 4)):
        lines = b"".join(m.key + b":" + m.value + b"\n" for m in part)
        kcat(broker, "-P", "-t", topic, "-K:", "-z", CODECS[i],
             "-X", "topic.partitioner=murmur2_random", input=lines)
    records = kcat_consume_all(broker, topic)
    assert len(records) == len(sent)

    by_partition = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    for rs in by_partition.values():
        rs.sort(key=lambda r: r.offset)

    def expected(partition: int, ts: int) -> int:
        for r in by_partition[partition]:
            if r.timestamp >= ts:
                return r.offset
        return -1

    stamps = sorted({r.timestamp for r in records})
    targets = [stamps[0] - 1000, stamps[0], stamps[len(stamps) // 3], stamps[len(stamps) // 2] + 1,
               stamps[-1], stamps[-1] + 1]
    for ts in targets:
        args = ["-Q"]
        for p in range(partitions):
            args += ["-t", f"{topic}:{p}:{ts}"]
        out = kcat(broker, *args)
        answers = {int(p): int(o) for p, o in re.findall(r"\[(\d+)\] offset (-?\d+)", out)}
        assert sorted(answers) == list(range(partitions)), out
        for p in range(partitions):
            assert answers[p] == expected(p, ts), (
                f"kcat -Q {topic}:{p}:{ts}: offset {answers[p]}, expected {expected(p, ts)}\n{out}")
