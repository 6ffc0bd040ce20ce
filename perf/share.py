#!/usr/bin/env python3
"""Share groups (KIP-932) against the classic consumer group, same broker, same run.

    .venv/bin/python perf/share.py                       # flush=always, 4 layouts
    RECORDS=20000 LAYOUTS=4x1,16x8 .venv/bin/python perf/share.py

One broker (2 shards, FLUSH policy) on 127.0.0.1. For each layout CxP (C consumers, P
partitions) a fresh topic gets RECORDS 1 KiB records, then:

1. classic: C confluent-kafka `Consumer`s in one consumer group (subscribe) read them
   all, committing offsets synchronously after every poll batch (the classic "ack");
2. share: C `ShareConsumer`s in one share group (explicit mode) read them all,
   acknowledging every record ACCEPT and `commit_sync` after every poll batch (each
   ShareAcknowledge is answered once its state is fdatasync'd).

Each consumer is its own process (no GIL between them). Reported per layout: records/s
of each (first record to last, over all consumers), the ratio share/classic, the
commit_sync (ack) latency p50/p99 seen by the share consumers, the broker's segment
fdatasync p99 from /metrics, and the broker's RSS at the end. Results go to stdout and
perf/out/share.json. RabbitMQ is not part of this run (not installed here).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from confluent_kafka import AcknowledgeType, Consumer, Producer, ShareConsumer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "perf"))
from proc_util import free_port, rss_bytes, start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
FLUSH = os.environ.get("FLUSH", "always")
RECORDS = int(os.environ.get("RECORDS", "20000"))
LAYOUTS = [tuple(int(x) for x in l.split("x"))
           for l in os.environ.get("LAYOUTS", "4x1,4x8,16x1,16x8").split(",")]
VALUE = b"x" * 1024
TIMEOUT_S = 300


def fill(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                           replication_factor=1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1_000_000})
    for i in range(RECORDS):
        while True:
            try:
                p.produce(topic, value=VALUE, partition=i % partitions)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(120) == 0


def classic_worker(bootstrap, topic, group, done, out):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    n, first, last = 0, None, None
    deadline = time.monotonic() + TIMEOUT_S
    while done.value < RECORDS and time.monotonic() < deadline:
        batch = [m for m in c.consume(500, 0.2) if m.error() is None]
        if not batch:
            continue
        first = first or time.time()
        c.commit(asynchronous=False)
        n += len(batch)
        last = time.time()
        with done.get_lock():
            done.value += len(batch)
    c.close()
    out.put((n, first, last, []))


def share_worker(bootstrap, topic, group, done, out):
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "share.acknowledgement.mode": "explicit", "max.poll.records": 500})
    c.subscribe([topic])
    n, first, last, acks = 0, None, None, []
    deadline = time.monotonic() + TIMEOUT_S
    while done.value < RECORDS and time.monotonic() < deadline:
        batch = [m for m in c.poll(0.2) if m.error() is None]
        if not batch:
            continue
        first = first or time.time()
        for m in batch:
            c.acknowledge(m, AcknowledgeType.ACCEPT)
        t = time.perf_counter()
        c.commit_sync(30)
        acks.append(time.perf_counter() - t)
        n += len(batch)
        last = time.time()
        with done.get_lock():
            done.value += len(batch)
    c.close()
    out.put((n, first, last, acks))


def run(kind: str, bootstrap: str, topic: str, consumers: int) -> dict:
    group = f"{kind}-{topic}"
    if kind == "share":
        admin = AdminClient({"bootstrap.servers": bootstrap})
        res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[ConfigEntry(
            "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
        for f in admin.incremental_alter_configs([res]).values():
            f.result(30)
    done, out = mp.Value("l", 0), mp.Queue()
    target = share_worker if kind == "share" else classic_worker
    procs = [mp.Process(target=target, args=(bootstrap, topic, group, done, out))
             for _ in range(consumers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=TIMEOUT_S + 60) for _ in procs]
    for p in procs:
        p.join(30)
    n = sum(r[0] for r in results)
    first = min(r[1] for r in results if r[1])
    last = max(r[2] for r in results if r[2])
    acks = sorted(a for r in results for a in r[3])
    pick = lambda q: round(acks[min(len(acks) - 1, int(q * len(acks)))] * 1e3, 2) if acks else None  # noqa: E731
    return {"records": n, "records_per_s": round(n / max(last - first, 1e-6)),
            "ack_p50_ms": pick(0.5), "ack_p99_ms": pick(0.99),
            "consumers_with_records": sum(1 for r in results if r[0] > 0)}


def fsync_p99_ms(admin_port: int) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith('sluice_fsync_latency_seconds{quantile="0.99"}'):
            return round(float(line.split()[-1]) * 1e3, 3)
    return None


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-share-perf-"))
    port, admin = free_port(), free_port()
    broker = start_sluice(BIN, tmp / "data", port, admin, "--flush", FLUSH)
    bootstrap = f"127.0.0.1:{port}"
    rows = []
    try:
        for consumers, partitions in LAYOUTS:
            row = {"consumers": consumers, "partitions": partitions}
            for kind in ("classic", "share"):
                topic = f"perf-{kind}-{consumers}x{partitions}"
                fill(bootstrap, topic, partitions)
                row[kind] = run(kind, bootstrap, topic, consumers)
            row["share_over_classic"] = round(
                row["share"]["records_per_s"] / max(row["classic"]["records_per_s"], 1), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
        summary = {"flush": FLUSH, "records_per_layout": RECORDS, "record_bytes": len(VALUE),
                   "fsync_p99_ms": fsync_p99_ms(admin), "broker_rss_mb": round(rss_bytes(broker.pid) / 2**20, 1),
                   "layouts": rows}
        out = ROOT / "perf" / "out"
        out.mkdir(exist_ok=True)
        (out / "share.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: v for k, v in summary.items() if k != "layouts"}))
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
