#!/usr/bin/env python3
"""What log compaction costs and how fast it goes (issue 16), in one broker run:

1. the disk's own sequential write then read of SIZE_MB (dd, O_DIRECT, in the data dir);
2. a compacted topic filled with SIZE_MB of keyed 1 KiB updates (KEYS keys) while its
   cleaning is held off (min.cleanable.dirty.ratio 1 and a long cleaner backoff do not
   stop a first pass of a wholly dirty log, so it is filled as cleanup.policy=delete and
   switched to compact afterwards);
3. produce latency (librdkafka's msg.latency(), reports polled for as they come) of a steady load (RATE records/s of
   1 KiB into another topic on the cleaner's shard, acks=all, one producer connection
   for all windows): SECONDS not counted (warm-up), SECONDS without cleaning, then
   SECONDS while the cleaner compacts the filled topic (synced to disk before);
4. the cleaner's throughput: dirty bytes read per second of cleaning
   (sluice_cleaner_bytes_read_total / sluice_cleaner_time_us_total), against the disk's
   sequential read+write rate (the cleaner reads and writes each byte once at most);
5. the produce maximum of both windows (a stall shows there first), and the mean
   Produce latency of each window seen by the client and by the broker (its
   sluice_request_latency_seconds sum and count between two scrapes).

    .venv/bin/python perf/compaction.py
    SIZE_MB=1024 KEYS=100000 .venv/bin/python perf/compaction.py

Targets (issue 16): cleaner ≥ 0.5× the disk's read+write rate; produce p99 while
cleaning ≤ 1.2× without. Results go to stdout and perf/out/compaction.json.
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from confluent_kafka import Producer
from kafka.record.util import calc_crc32c
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, NewTopic)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from conftest import free_ports  # noqa: E402
from proc_util import start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
SIZE_MB = int(os.environ.get("SIZE_MB", "256"))
KEYS = int(os.environ.get("KEYS", "20000"))
RATE = int(os.environ.get("RATE", "2000"))
SECONDS = float(os.environ.get("SECONDS", "10"))
# DROP_CACHES=1: evict the compacted topic's files from the page cache before cleaning
# (posix_fadvise DONTNEED after a sync; nothing else is evicted), so the cleaner reads
# the log from the disk as it would a log written long ago.
DROP_CACHES = os.environ.get("DROP_CACHES", "") == "1"
VALUE = 1024
POLL_EVERY_S = 0.0001
SHARDS = 2


def dd_rate(dirpath: Path, mb: int) -> tuple[float, float]:
    """(write MB/s, read MB/s) of a sequential O_DIRECT file of `mb` MiB."""
    f = dirpath / "dd.bin"
    def run(args: list[str]) -> float:
        t = time.monotonic()
        subprocess.run(["dd", *args, "bs=1M", f"count={mb}", "status=none"], check=True)
        return mb / (time.monotonic() - t)
    w = run(["if=/dev/zero", f"of={f}", "oflag=direct", "conv=fdatasync"])
    r = run([f"if={f}", "of=/dev/null", "iflag=direct"])
    f.unlink()
    return w, r


def metrics(admin: int) -> dict[str, float]:
    """The cleaner's counters (summed over shards), and the broker's Produce latency
    count and sum (sluice_produce_count, sluice_produce_sum_s)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(sluice_cleaner_[a-z_]+)\{[^}]*\}\s+(\S+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
        m = re.match(r'^sluice_request_latency_seconds_(count|sum)\{api="Produce"\}\s+(\S+)$', line)
        if m:
            out["sluice_produce_" + {"count": "count", "sum": "sum_s"}[m.group(1)]] = float(m.group(2))
    return out


def broker_mean_ms(a: dict[str, float], b: dict[str, float]) -> float:
    """The broker's own mean Produce latency between two scrapes, in ms."""
    n = b.get("sluice_produce_count", 0) - a.get("sluice_produce_count", 0)
    t = b.get("sluice_produce_sum_s", 0) - a.get("sluice_produce_sum_s", 0)
    return round(t / n * 1e3, 3) if n > 0 else float("nan")


def mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 3) if xs else float("nan")


def fill(bootstrap: str, topic: str) -> int:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "compression.type": "none", "queue.buffering.max.kbytes": 1_048_576})
    rng = random.Random(16)
    n = SIZE_MB * 1024 * 1024 // (VALUE + 16)
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=b"key-%08d" % rng.randrange(KEYS), value=rng.randbytes(VALUE),
                          partition=0)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return n


def load_topic(shards: int) -> str:
    """A topic name whose partition 0 lands on the shard of "dirty" (the broker places
    partition 0 of a topic on shard crc32c(name) % shards): the load then shares its
    shard with the cleaner, the case the target is about."""
    want = calc_crc32c(b"dirty") % shards
    return next(n for n in ("load", *(f"load-{i}" for i in range(1000)))
                if calc_crc32c(n.encode()) % shards == want)


def latencies(p: Producer, topic: str) -> list[float]:
    """Produce RATE records/s for SECONDS; the acks=all latency of each, in ms.

    Between sends the producer is polled every POLL_EVERY_S until the next send is due,
    so a delivery report waits at most that long to be read (msg.latency() is
    librdkafka's time from produce() to the moment the report is read). poll() with a
    timeout under 1 ms does not wait at all: it would spin a core. Python's garbage collector is off
    meanwhile: a full collection held the core of the cleaner's shard for 47 ms in a
    traced run, a pause of the load generator and not of the broker."""
    out: list[float] = []
    value = os.urandom(VALUE)
    gc.collect()
    gc.disable()
    try:
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < SECONDS:
            due = start + i / RATE
            while (now := time.monotonic()) < due:
                p.poll(0)
                time.sleep(min(due - now, POLL_EVERY_S))
            p.produce(topic, key=b"k%d" % (i % 1000), value=value,
                      on_delivery=lambda err, msg: out.append(msg.latency() * 1e3))
            p.poll(0)
            i += 1
        p.flush(60)
    finally:
        gc.enable()
    return out


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[int(len(xs) * 0.99)] if xs else float("nan")


def alter(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
    admin.incremental_alter_configs([res])[res].result(30)


def evict(data: Path) -> None:
    """The page-cache pages of the "dirty" topic's files dropped (written back first)."""
    subprocess.run(["sync"], check=True)
    for f in data.rglob("*"):
        if f.is_file() and "dirty" in str(f.relative_to(data)):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-compaction-"))
    (tmp / "data").mkdir()
    disk_w, disk_r = dd_rate(tmp, SIZE_MB)
    port, admin = free_ports(2)
    proc = start_sluice(BIN, tmp / "data", port, admin, "--flush", "never",
                        "--cleaner-backoff-ms", "200", shards=SHARDS)
    bootstrap = f"127.0.0.1:{port}"
    load = load_topic(SHARDS)
    try:
        a = AdminClient({"bootstrap.servers": bootstrap})
        fs = a.create_topics([
            NewTopic("dirty", 1, 1, config={"segment.bytes": str(64 << 20), "retention.ms": "-1"}),
            NewTopic(load, 1, 1)])
        for f in fs.values():
            f.result(30)
        records = fill(bootstrap, "dirty")
        # The fill's dirty pages written back before the quiet window: their writeback
        # (ext4 allocating 512 MiB of delayed blocks) stalled appends to any file for
        # 20-40 ms about 3 s after the fill, inside the quiet window.
        os.sync()
        time.sleep(1)
        # One producer, so one connection, for both windows: the broker's shard for a new
        # connection is the kernel's pick (SO_REUSEPORT), and a window whose connection
        # sat on the other shard than the other window's measured that, not the cleaner.
        load_producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
        # A first window not counted: the producer's first seconds held a 20-40 ms stall
        # in every run (after a fill), which belongs to neither window.
        latencies(load_producer, load)
        at_quiet = metrics(admin)
        quiet = latencies(load_producer, load)
        if DROP_CACHES:
            evict(tmp / "data")
        before = metrics(admin)
        alter(bootstrap, "dirty", {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
        cleaning = latencies(load_producer, load)
        during = metrics(admin)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            m = metrics(admin)
            if m.get("sluice_cleaner_passes_total", 0) >= 1:
                break
            time.sleep(0.5)
        time.sleep(1)
        m = metrics(admin)
        read = m.get("sluice_cleaner_bytes_read_total", 0)
        secs = m.get("sluice_cleaner_time_us_total", 0) / 1e6
        cleaner = read / 2**20 / secs if secs else float("nan")
        disk = 1 / (1 / disk_w + 1 / disk_r)  # MB of log read and rewritten per second
        result = {
            "size_mb": SIZE_MB, "keys": KEYS, "records": records,
            "disk_write_mb_s": round(disk_w, 1), "disk_read_mb_s": round(disk_r, 1),
            "disk_read_plus_write_mb_s": round(disk, 1),
            "cleaner_mb_s": round(cleaner, 1), "cleaner_vs_disk": round(cleaner / disk, 2),
            "cleaner_bytes_read": read,
            "cleaner_bytes_written": m.get("sluice_cleaner_bytes_written_total", 0),
            "cleaner_read_during_load": during.get("sluice_cleaner_bytes_read_total", 0)
            - before.get("sluice_cleaner_bytes_read_total", 0),
            "cleaner_busy_s_during_load": round(
                (during.get("sluice_cleaner_time_us_total", 0)
                 - before.get("sluice_cleaner_time_us_total", 0)) / 1e6, 2),
            "page_cache_dropped": DROP_CACHES,
            "produce_p99_ms_quiet": round(p99(quiet), 2),
            "produce_p99_ms_cleaning": round(p99(cleaning), 2),
            "p99_ratio": round(p99(cleaning) / p99(quiet), 2),
            # The mean, client and broker, in each window: how much of what the client
            # sees more while cleaning is in the broker's handling of the request.
            "produce_mean_ms_quiet": mean(quiet), "produce_mean_ms_cleaning": mean(cleaning),
            "broker_produce_mean_ms_quiet": broker_mean_ms(at_quiet, before),
            "broker_produce_mean_ms_cleaning": broker_mean_ms(before, during),
            "produce_max_ms_quiet": round(max(quiet), 2),
            "produce_max_ms_cleaning": round(max(cleaning), 2),
            "produce_rate": RATE, "seconds": SECONDS, "load_topic": load,
        }
        print(json.dumps(result, indent=2))
        out = ROOT / "perf" / "out"
        out.mkdir(exist_ok=True)
        (out / "compaction.json").write_text(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
