#!/usr/bin/env python3
"""What a topic's compression.type costs: produce throughput into a topic that keeps the
producer's codec against one that recompresses every batch on the partition's owner,
in one broker run.

    .venv/bin/python perf/compression.py
    TOTAL=500000 TARGET=gzip PRODUCER_CODEC=none .venv/bin/python perf/compression.py

One broker (2 shards, flush=never) on 127.0.0.1 and confluent-kafka (librdkafka): TOTAL
records of 1 KiB (half random bytes, half repetitive text, like the client tests'
workload) with acks=all and PRODUCER_CODEC (default lz4) into a 2-partition topic with
compression.type=producer and into one with compression.type=TARGET (default zstd),
alternating ROUNDS times so neither always runs first. Reports records/s and MB/s of
each, their ratio, the broker's CPU seconds for each (from /proc), and the bytes stored
(DescribeLogDirs; each topic is deleted after its run, so little disk is needed).

Results go to stdout and perf/out/compression.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
from conftest import free_ports  # noqa: E402
from proc_util import cpu_seconds, start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
TOTAL = int(os.environ.get("TOTAL", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
TARGET = os.environ.get("TARGET", "zstd")
PRODUCER_CODEC = os.environ.get("PRODUCER_CODEC", "lz4")
PARTITIONS = 2


def create(bootstrap: str, topic: str, config: dict) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1,
                                       config=config)])
    for f in fs.values():
        f.result(30)


def values(n: int) -> list[bytes]:
    rng = random.Random(7)
    return [rng.randbytes(1024) if i % 2 else (b"sluice-%d-" % i * 130)[:1024] for i in range(n)]


def run(bootstrap: str, topic: str, vals: list[bytes], pid: int) -> dict:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
                  "compression.type": PRODUCER_CODEC, "queue.buffering.max.messages": 1_000_000})
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    for i in range(TOTAL):
        while True:
            try:
                p.produce(topic, value=vals[i % len(vals)])
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    took = time.perf_counter() - t0
    return {"rec_s": TOTAL / took, "mb_s": TOTAL * 1024 / took / 1e6,
            "broker_cpu_s": cpu_seconds(pid) - cpu0}


def stored_bytes_and_delete(bootstrap: str, topic: str) -> int:
    """The topic's bytes on disk (DescribeLogDirs through kafka-python); then the topic
    is deleted, so the runs need little disk."""
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [answer] = admin.describe_log_dirs({topic: list(range(PARTITIONS))})
        size = sum(p["partition_size"] for t in answer["log_dirs"][0]["topics"]
                   for p in t["partitions"])
        admin.delete_topics([topic])
        return size
    finally:
        admin.close()


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-compression-perf-"))
    port, admin = free_ports(2)
    proc = start_sluice(BIN, tmp / "data", port, admin, "--flush", "never")
    bootstrap = f"127.0.0.1:{port}"
    vals = values(10_000)
    results = {"producer": [], "recompress": []}
    try:
        for r in range(ROUNDS):
            order = ["producer", "recompress"] if r % 2 == 0 else ["recompress", "producer"]
            for kind in order:
                topic = f"{kind}-{r}"
                create(bootstrap, topic, {} if kind == "producer" else {"compression.type": TARGET})
                res = run(bootstrap, topic, vals, proc.pid)
                res["stored_bytes"] = stored_bytes_and_delete(bootstrap, topic)
                results[kind].append(res)
    finally:
        proc.terminate()
        proc.wait(30)
    summary = {}
    for kind, runs in results.items():
        summary[kind] = {
            "rec_s": round(sum(x["rec_s"] for x in runs) / len(runs)),
            "mb_s": round(sum(x["mb_s"] for x in runs) / len(runs), 1),
            "broker_cpu_s_per_run": round(sum(x["broker_cpu_s"] for x in runs) / len(runs), 2),
            "stored_bytes": runs[0]["stored_bytes"],
        }
    shutil.rmtree(tmp, ignore_errors=True)
    out = {"records": TOTAL, "record_bytes": 1024, "producer_codec": PRODUCER_CODEC,
           "target": TARGET, "rounds": ROUNDS, "runs": results, "summary": summary,
           "ratio": round(summary["recompress"]["rec_s"] / summary["producer"]["rec_s"], 3)}
    print(json.dumps(out, indent=2))
    (ROOT / "perf" / "out").mkdir(exist_ok=True)
    (ROOT / "perf" / "out" / "compression.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
