"""The messages the client tests send, and the checks they make on what comes back.

The story every client test tells: a keyed workload (keys `key-0` .. `key-999`)
where each value carries its key and a per-key sequence number, so that after
reading everything back we can check that

- nothing is lost and nothing is duplicated,
- each key's messages sit in one partition, the one the Java/murmur2
  partitioner picks, in the order they were sent,
- every byte of every value is as sent,
- every offset a producer was told (delivery report) holds exactly its message,
- the offsets of a partition are 0, 1, 2, ... with no holes.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

# Value sizes: mostly small, some medium, a few large (average about 400 bytes).
VALUE_SIZES = [8, 24, 60, 120, 250, 400, 700, 1200, 2500, 8000]
VALUE_SIZE_WEIGHTS = [10, 10, 14, 16, 16, 12, 10, 7, 4, 1]

CODECS = ("gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True)
class Message:
    index: int
    key: bytes
    seq: int          # position of this message among its key's messages
    value: bytes
    timestamp: int | None = None  # ms since the epoch, None = producer's clock


@dataclass(frozen=True)
class Record:
    """A record as a consumer saw it."""
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


def make_messages(count: int, *, keys: int = 1000, seed: int = 1, start: int = 0,
                  printable: bool = False, tag: str = "") -> list[Message]:
    """Messages number `start` .. `start + count - 1` of a workload over keys
    `key-<i % keys>` (so a later call with `start` continues each key's
    sequence). The value is
    `<key>|<seq>|<filler>` with a filler of varied size. Half the fillers are
    random bytes, half repetitive text (compressible). `printable=True` keeps
    values to [0-9a-z|-] so they fit line-based tools (kcat)."""
    rng = random.Random(seed)
    sizes = rng.choices(VALUE_SIZES, VALUE_SIZE_WEIGHTS, k=count)
    messages = []
    for n in range(count):
        i = start + n
        key = f"key-{i % keys}".encode()
        seq = i // keys
        head = b"%s|%d|%s" % (key, seq, tag.encode())
        size = sizes[n]
        if printable:
            filler = rng.randbytes((size + 1) // 2).hex()[:size].encode()
        elif i % 2:
            filler = rng.randbytes(size)
        else:
            filler = (b"sluice-%d-" % i * (size // 8 + 1))[:size]
        messages.append(Message(i, key, seq, head + filler))
    return messages


def split_by_key(messages: list[Message], ways: int) -> list[list[Message]]:
    """Split among `ways` producers so that each key has exactly one producer
    (order per key is only promised within one producer)."""
    parts: list[list[Message]] = [[] for _ in range(ways)]
    for m in messages:
        parts[int(m.key.split(b"-")[1]) % ways].append(m)
    return parts


def parse_value(value: bytes) -> tuple[bytes, int]:
    key, seq, _ = value.split(b"|", 2)
    return key, int(seq)


# --- the Java / kafka-python default partitioner (KAFKA-COMPAT.md section 6) -----

def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2` (seed 0x9747b28c), as an unsigned 32-bit value."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


assert murmur2(b"") == 0x106E08D9 and murmur2(b"kafka") == 0xD067CF64


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


# --- checks --------------------------------------------------------------------

def _first(items: Iterable, n: int = 5) -> list:
    out = []
    for item in items:
        out.append(item)
        if len(out) == n:
            break
    return out


def check_offsets_contiguous(records: list[Record]) -> None:
    """Each partition's offsets are exactly 0 .. n-1 (a fresh, non-transactional topic)."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r.offset)
    for partition, offsets in sorted(by_partition.items()):
        offsets.sort()
        expected = list(range(len(offsets)))
        if offsets != expected:
            bad = _first((o, e) for o, e in zip(offsets, expected) if o != e)
            raise AssertionError(
                f"partition {partition}: offsets are not 0..{len(offsets) - 1}; "
                f"first (offset, expected) mismatches: {bad}")


def check_story(sent: list[Message], consumed: list[Record], *, partitions: int,
                delivered: dict[int, tuple[int, int]] | None = None,
                java_partitioner: bool = True) -> None:
    """Everything sent came back exactly once, per key in order, byte for byte,
    at the offsets the producers were told."""
    # Count first: the clearest message for loss or duplication.
    assert len(consumed) == len(sent), (
        f"consumed {len(consumed)} records, sent {len(sent)}")

    sent_pairs = Counter((m.key, m.value) for m in sent)
    got_pairs = Counter((r.key, r.value) for r in consumed)
    missing = sent_pairs - got_pairs
    unexpected = got_pairs - sent_pairs
    assert not missing and not unexpected, (
        f"{sum(missing.values())} sent messages missing, {sum(unexpected.values())} "
        f"unexpected records; e.g. missing {[(k, v[:40]) for k, v in _first(missing)]} "
        f"unexpected {[(k, (v or b'')[:40]) for k, v in _first(unexpected)]}")

    check_offsets_contiguous(consumed)

    partition_of_key: dict[bytes, set[int]] = defaultdict(set)
    for r in consumed:
        partition_of_key[r.key].add(r.partition)
    split = {k: p for k, p in partition_of_key.items() if len(p) > 1}
    assert not split, f"keys spread over several partitions: {_first(split.items())}"
    if java_partitioner:
        wrong = {k: (p, java_partition(k, partitions)) for k, (p,) in partition_of_key.items()
                 if p != java_partition(k, partitions)}
        assert not wrong, f"keys not in their murmur2 partition (got, expected): {_first(wrong.items())}"

    last_seq: dict[bytes, int] = {}
    for r in sorted(consumed, key=lambda r: (r.partition, r.offset)):
        key, seq = parse_value(r.value)
        assert key == r.key, f"record at {r.partition}/{r.offset} has key {r.key!r} but value of {key!r}"
        previous = last_seq.get(key, -1)
        assert seq > previous, (
            f"key {key!r}: sequence {seq} at {r.partition}/{r.offset} after {previous}: "
            "order per key broken")
        last_seq[key] = seq

    if delivered is not None:
        at = {(r.partition, r.offset): r for r in consumed}
        assert len(delivered) == len(sent), (
            f"{len(sent) - len(delivered)} messages got no successful delivery report")
        for m in sent:
            where = delivered[m.index]
            r = at.get(where)
            assert r is not None, f"message {m.index} delivered at {where}, nothing there"
            assert (r.key, r.value) == (m.key, m.value), (
                f"message {m.index} was delivered at partition/offset {where} but that "
                f"offset holds key {r.key!r} value {r.value[:40]!r}...")
