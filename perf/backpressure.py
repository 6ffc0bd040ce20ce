#!/usr/bin/env python3
"""Produce backpressure under a memory budget (issue 5, first perf scenario).

    /work/main/.venv/bin/python perf/backpressure.py --budget 268435456 --label budget-256m
    /work/main/.venv/bin/python perf/backpressure.py --budget 1099511627776 --label budget-off

Starts the release broker (`target/release/sluice`, or $SLUICE_BIN) with
`--flush always --memory-budget BUDGET` on a fresh data dir, creates a topic, and
runs PRODUCERS producer processes (confluent-kafka, acks=all, 1 KiB records of
random bytes) that send as fast as they can for DURATION seconds, so that the
disk (one fdatasync per group commit) is the bottleneck. Producers are not
idempotent so that they can keep up to 64 requests in flight per connection
(the broker's max_inflight_requests): that is what would pile up in the broker
without credit.

While they run, the broker's VmRSS is sampled every 250 ms into
perf/backpressure-<label>.csv (seconds since start, RSS bytes). Afterwards every
partition's high watermark is compared with the number of records acknowledged
for it, and a summary is printed as `key=value` lines: max RSS and its ratio to
the budget, acked records and MiB/s, delivery latency p50/p99/max from the
producers' delivery reports (librdkafka's msg.latency(): from produce() to the
acknowledgement, so it includes time queued in the client), delivery errors, and
the broker's credit-wait counter.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from proc_util import free_port, rss_bytes

REPO = Path(__file__).resolve().parents[1]
RECORD_BYTES = 1024
# Latency histogram: log buckets of 1% width over microseconds.
BUCKET_BASE = 1.01




def scrape(admin: str) -> str:
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=10) as r:
        return r.read().decode()


def metric_sum(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def producer_proc(idx: int, bootstrap: str, topic: str, duration: float, out: mp.Queue) -> None:
    from confluent_kafka import Producer

    acked: dict[int, int] = {}
    errors: list[str] = []
    hist: dict[int, int] = {}

    def on_delivery(err, msg):
        if err is not None:
            if len(errors) < 20:
                errors.append(str(err))
            else:
                errors.append("")
            return
        p = msg.partition()
        acked[p] = acked.get(p, 0) + 1
        lat = msg.latency()
        if lat is not None:
            b = int(math.log(max(lat * 1e6, 1.0), BUCKET_BASE))
            hist[b] = hist.get(b, 0) + 1

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 64,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 65536,
        "message.timeout.ms": 300_000,
        "on_delivery": on_delivery,
        "client.id": f"backpressure-{idx}",
    })
    payloads = [random.Random(idx * 1000 + i).randbytes(RECORD_BYTES) for i in range(64)]
    sent = 0
    end = time.monotonic() + duration
    while time.monotonic() < end:
        for _ in range(256):
            try:
                producer.produce(topic, payloads[sent & 63])
                sent += 1
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(300)
    out.put({"idx": idx, "sent": sent, "unflushed": left, "acked": acked,
             "errors": errors, "hist": hist})


def quantile(hist: dict[int, int], q: float) -> float:
    """Microseconds at quantile q of a merged log-bucket histogram."""
    total = sum(hist.values())
    if total == 0:
        return float("nan")
    rank = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return BUCKET_BASE ** (b + 1)
    return BUCKET_BASE ** (max(hist) + 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=int, default=256 << 20, help="--memory-budget of the broker (bytes)")
    ap.add_argument("--label", default=None, help="CSV name suffix (default budget-<bytes>)")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--producers", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--data-dir", default=None, help="default: a temp dir under /var/tmp")
    args = ap.parse_args()
    label = args.label or f"budget-{args.budget}"
    binary = os.environ.get("SLUICE_BIN", str(REPO / "target" / "release" / "sluice"))
    work = Path(args.data_dir or tempfile.mkdtemp(prefix="sluice-bp-", dir="/var/tmp"))
    port, admin_port = free_port(), free_port()
    bootstrap, admin = f"127.0.0.1:{port}", f"127.0.0.1:{admin_port}"
    log = open(work / "broker.log", "wb")
    broker = subprocess.Popen(
        [binary, "serve", "--listen", bootstrap, "--admin-addr", admin,
         "--data-dir", str(work / "data"), "--shards", str(args.shards),
         "--flush", "always", "--memory-budget", str(args.budget)],
        stdout=log, stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")})
    try:
        return run(args, label, broker, bootstrap, admin, work)
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(30)
        except subprocess.TimeoutExpired:
            broker.kill()
        if not args.data_dir:
            shutil.rmtree(work, ignore_errors=True)


def run(args, label, broker, bootstrap, admin, work) -> int:
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    deadline = time.monotonic() + 30
    while True:
        try:
            scrape(admin)
            break
        except OSError:
            if time.monotonic() > deadline or broker.poll() is not None:
                print(f"broker did not start; log in {work}/broker.log", file=sys.stderr)
                return 1
            time.sleep(0.1)
    topic = "backpressure"
    admin_client = AdminClient({"bootstrap.servers": bootstrap})
    admin_client.create_topics(
        [NewTopic(topic, num_partitions=args.partitions, replication_factor=1)])[topic].result(30)
    time.sleep(1.0)

    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    t0 = time.monotonic()

    def sample():
        while not stop.is_set():
            try:
                samples.append((time.monotonic() - t0, rss_bytes(broker.pid)))
            except OSError:
                return
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=producer_proc, args=(i, bootstrap, topic, args.duration, out))
             for i in range(args.producers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=args.duration + 600) for _ in procs]
    for p in procs:
        p.join(30)
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join()

    csv = REPO / "perf" / f"backpressure-{label}.csv"
    with open(csv, "w") as f:
        f.write("seconds,rss_bytes\n")
        for t, r in samples:
            f.write(f"{t:.3f},{r}\n")

    acked: dict[int, int] = {}
    hist: dict[int, int] = {}
    errors: list[str] = []
    sent = unflushed = 0
    for r in results:
        sent += r["sent"]
        unflushed += r["unflushed"]
        errors += r["errors"]
        for p, n in r["acked"].items():
            acked[int(p)] = acked.get(int(p), 0) + n
        for b, n in r["hist"].items():
            hist[int(b)] = hist.get(int(b), 0) + n
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bp-check"})
    hwm = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30, cached=False)[1]
           for p in range(args.partitions)}
    consumer.close()
    text = scrape(admin)
    total_acked = sum(acked.values())
    max_rss = max((r for _, r in samples), default=0)
    summary = {
        "label": label,
        "budget_bytes": args.budget,
        "duration_s": round(elapsed, 1),
        "producers": args.producers,
        "max_rss_mib": round(max_rss / 2**20, 1),
        "max_rss_to_budget": round(max_rss / args.budget, 4),
        "rss_samples": len(samples),
        "sent": sent,
        "acked": total_acked,
        "unflushed": unflushed,
        "delivery_errors": len(errors),
        "first_errors": [e for e in errors if e][:3],
        "acked_per_s": round(total_acked / args.duration),
        "acked_mib_per_s": round(total_acked * RECORD_BYTES / args.duration / 2**20, 1),
        "latency_p50_ms": round(quantile(hist, 0.5) / 1000, 1),
        "latency_p99_ms": round(quantile(hist, 0.99) / 1000, 1),
        "latency_max_ms": round(quantile(hist, 1.0) / 1000, 1),
        "credit_waits": int(metric_sum(text, "sluice_produce_credit_waits_total")),
        "rss_under_budget": max_rss < args.budget,
        "hwm_equals_acked": all(hwm[p] == acked.get(p, 0) for p in hwm),
        "hwm": hwm,
        "acked_per_partition": dict(sorted(acked.items())),
        "csv": str(csv.relative_to(REPO)),
    }
    for k, v in summary.items():
        print(f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}")
    ok = summary["hwm_equals_acked"] and summary["rss_under_budget"] and not errors and unflushed == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
