#!/usr/bin/env python3
"""Many partitions on one broker (issue 18, item 5), in one run against the same broker:

- create 10 topics x 1,000 partitions (CreateTopics through confluent-kafka's admin
  client): seconds, and the broker's RSS before and after;
- produce to 10 topics x 10 partitions (100), then to all 10,000, with the same load: 10
  producer processes at once, one per topic, 1 KiB records keyed over 100,000 keys so
  every partition gets records, acks=1, as fast as they go (`sluice bench`, librdkafka,
  which sends one partition per ProduceRequest: librdkafka issue 1700, so 10,000
  partitions also mean many small requests). The figures: the ratio of the two
  throughputs (target: 10,000 partitions lose <= 20%), and the broker's CPU-s per GB and
  records per Produce request in each;
- a graceful stop (SIGTERM until the process exits) and a restart (start until the port
  answers and Metadata lists every partition), both with 10,100 partitions on disk.

Usage: perf/partitions.py   (SLUICE_BIN, DURATION_S=10, TOPICS=10, PARTITIONS=1000)
Writes perf/out/partitions.json and prints it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_util import (cpu_seconds, free_port, metrics_text, rss_bytes, sample,  # noqa: E402
                       start_sluice)

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
DURATION_S = float(os.environ.get("DURATION_S", "10"))
TOPICS = int(os.environ.get("TOPICS", "10"))
PARTITIONS = int(os.environ.get("PARTITIONS", "1000"))
NARROW = 10  # partitions per topic of the 100-partition comparison


def mib(pid: int) -> float:
    return round(rss_bytes(pid) / 2**20, 1)


def create(bootstrap: str, prefix: str, partitions: int) -> float:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    started = time.monotonic()
    topics = [NewTopic(f"{prefix}-{t}", partitions, 1) for t in range(TOPICS)]
    for f in admin.create_topics(topics, operation_timeout=300, request_timeout=300).values():
        f.result(360)
    return round(time.monotonic() - started, 2)


def produce_requests(admin: int) -> int:
    count = sample(metrics_text(admin), 'sluice_request_latency_seconds_count{api="Produce"}')
    return int(count or 0)


def produce(bootstrap: str, admin: int, pid: int, prefix: str, partitions: int) -> dict:
    """One producer process per topic, all at once: the sum of their rates, and what the
    broker spent (CPU-s per GB, records per Produce request)."""
    cpu, requests, started = cpu_seconds(pid), produce_requests(admin), time.monotonic()
    procs = [subprocess.Popen(
        [BIN, "bench", "--brokers", bootstrap, "--topic", f"{prefix}-{t}",
         "--partitions", str(partitions), "--message-bytes", "1024", "--keys", "100000",
         "--acks", "1", "--producers", "1", "--consumers", "0", "--rate", "0",
         "--duration-s", str(DURATION_S), "--warmup-s", "2", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for t in range(TOPICS)]
    reports = [json.loads(p.communicate(timeout=DURATION_S + 180)[0]) for p in procs]
    records = sum(r["produced_total"] for r in reports)
    rate = sum(r["produce_msgs_per_sec"] for r in reports)
    cpu, requests = cpu_seconds(pid) - cpu, produce_requests(admin) - requests
    return {"partitions": partitions * TOPICS, "msgs_per_sec": rate,
            "records": records, "broker_cpu_s_per_gb": round(cpu / max(records * 1024 / 1e9, 1e-9), 2),
            "records_per_produce_request": round(records / max(requests, 1), 1),
            "wall_s": round(time.monotonic() - started, 1)}


def wide_over_narrow(bootstrap: str, admin: int, pid: int, out: dict) -> None:
    """Creates the wide topics (TOPICS x PARTITIONS) and the narrow ones (TOPICS x 10),
    produces to the narrow ones, then the wide ones, and puts the figures in `out`."""
    out["create_s"] = create(bootstrap, "wide", PARTITIONS)
    out["rss_mb_created"] = mib(pid)
    create(bootstrap, "narrow", NARROW)
    out["narrow"] = produce(bootstrap, admin, pid, "narrow", NARROW)
    out["wide"] = produce(bootstrap, admin, pid, "wide", PARTITIONS)
    out["wide_over_narrow"] = round(
        out["wide"]["msgs_per_sec"] / max(out["narrow"]["msgs_per_sec"], 1), 3)


def stop(broker: subprocess.Popen) -> float:
    started = time.monotonic()
    broker.send_signal(signal.SIGTERM)
    broker.wait(300)
    return round(time.monotonic() - started, 2)


def restart(data: Path, port: int, admin: int, expected: int) -> tuple[subprocess.Popen, float]:
    started = time.monotonic()
    broker = start_sluice(BIN, data, port, admin, start_timeout_s=600)
    client = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    while True:
        md = client.list_topics(timeout=30)
        if sum(len(t.partitions) for t in md.topics.values()) >= expected:
            return broker, round(time.monotonic() - started, 2)
        time.sleep(0.05)


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-partitions-perf-"))
    port, admin = free_port(), free_port()
    data = tmp / "data"
    broker = start_sluice(BIN, data, port, admin)
    bootstrap = f"127.0.0.1:{port}"
    out = {"topics": TOPICS, "partitions_per_topic": PARTITIONS, "duration_s": DURATION_S,
           "shards": 2, "rss_mb_start": mib(broker.pid)}
    try:
        wide_over_narrow(bootstrap, admin, broker.pid, out)
        out["rss_mb_after_produce"] = mib(broker.pid)
        out["graceful_stop_s"] = stop(broker)
        broker, out["restart_s"] = restart(data, port, admin, TOPICS * (PARTITIONS + NARROW))
        out["rss_mb_restarted"] = mib(broker.pid)
        out["graceful_stop_after_restart_s"] = stop(broker)
    finally:  # what was measured is kept, also when a step failed
        if broker.poll() is None:
            broker.kill()
            broker.wait(30)
        (ROOT / "perf" / "out").mkdir(exist_ok=True)
        (ROOT / "perf" / "out" / "partitions.json").write_text(json.dumps(out, indent=2))
        print(json.dumps(out, indent=2))
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
