#!/usr/bin/env python3
"""What a transaction costs: commit latency and throughput against an idempotent producer.

    .venv/bin/python perf/transactions.py                 # flush=always, the default below
    FLUSH=never TXNS=300 .venv/bin/python perf/transactions.py

One broker (2 shards, FLUSH policy) on 127.0.0.1 and confluent-kafka (librdkafka):

1. commit latency: TXNS transactions of RECORDS_SMALL 100-byte records each to a
   4-partition topic, one after another; each timed from begin_transaction to the return
   of commit_transaction (AddPartitionsToTxn, the produce, EndTxn with its markers), as
   an HDR-style percentile table of the client's view;
2. throughput: TOTAL 1 KiB records with acks=all, once by an idempotent producer and once
   by a transactional one committing every BATCH records, same topic layout; records/s
   of each and their ratio (the cost of the markers and coordinator round trips).

Results go to stdout and perf/out/transactions.json.
"""

from __future__ import annotations

import json
import os
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
from proc_util import start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
FLUSH = os.environ.get("FLUSH", "always")
TXNS = int(os.environ.get("TXNS", "500"))
RECORDS_SMALL = int(os.environ.get("RECORDS_SMALL", "10"))
TOTAL = int(os.environ.get("TOTAL", "200000"))
BATCH = int(os.environ.get("BATCH", "5000"))
PARTITIONS = 4


def create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    for f in fs.values():
        f.result(30)


def percentiles(samples: list[float]) -> dict:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {f"p{int(q * 1000) / 10:g}": round(pick(q) * 1e3, 3) for q in (0.5, 0.9, 0.99, 0.999)} | {
        "max": round(s[-1] * 1e3, 3)}


def commit_latency(bootstrap: str) -> dict:
    create(bootstrap, "txn-lat")
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "perf-lat", "linger.ms": 0})
    p.init_transactions(30)
    took = []
    for i in range(TXNS):
        t0 = time.perf_counter()
        p.begin_transaction()
        for j in range(RECORDS_SMALL):
            p.produce("txn-lat", value=b"x" * 100, key=str(j).encode())
        p.commit_transaction(30)
        took.append(time.perf_counter() - t0)
    return {"transactions": TXNS, "records_each": RECORDS_SMALL,
            "txn_per_s": round(TXNS / sum(took), 1), "latency_ms": percentiles(took)}


def throughput(bootstrap: str, transactional: bool) -> float:
    topic = "txn-tp" if transactional else "idem-tp"
    create(bootstrap, topic)
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all",
            "enable.idempotence": True, "queue.buffering.max.messages": 1_000_000}
    if transactional:
        conf["transactional.id"] = "perf-tp"
    p = Producer(conf)
    if transactional:
        p.init_transactions(30)
    value = b"v" * 1024
    t0 = time.perf_counter()
    sent = 0
    while sent < TOTAL:
        if transactional:
            p.begin_transaction()
        for _ in range(min(BATCH, TOTAL - sent)):
            while True:
                try:
                    p.produce(topic, value=value)
                    break
                except BufferError:
                    p.poll(0.01)
            sent += 1
        if transactional:
            p.commit_transaction(60)
    p.flush(60)
    return TOTAL / (time.perf_counter() - t0)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-txn-perf-"))
    port, admin = free_ports(2)
    proc = start_sluice(BIN, tmp / "data", port, admin, "--flush", FLUSH)
    bootstrap = f"127.0.0.1:{port}"
    try:
        lat = commit_latency(bootstrap)
        idem = throughput(bootstrap, False)
        txn = throughput(bootstrap, True)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"flush": FLUSH, "commit": lat,
           "throughput": {"records": TOTAL, "record_bytes": 1024, "txn_batch": BATCH,
                          "idempotent_rec_s": round(idem), "transactional_rec_s": round(txn),
                          "ratio": round(txn / idem, 3)}}
    print(json.dumps(out, indent=2))
    (ROOT / "perf" / "out").mkdir(exist_ok=True)
    (ROOT / "perf" / "out" / "transactions.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
