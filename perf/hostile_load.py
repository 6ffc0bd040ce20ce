#!/usr/bin/env python3
"""A well-behaved client's latency next to hostile ones, against a quiet run (issue 14, item 5).

    SLUICE_BIN=$PWD/target/release/sluice .venv/bin/python perf/hostile_load.py
    SECONDS_EACH=20 RATE=500 .venv/bin/python perf/hostile_load.py

One broker (2 shards, flush=always, 128 MiB memory budget, 40 connections per shard,
request_read_timeout 3 s, idle timeout 4 s) on 127.0.0.1. `Steady` (tests/clients/
hostile.py: acks=all producer at RATE records/s of 1 KiB, and a consumer) runs for
SECONDS_EACH alone (quiet), then next to each hostile client in turn: a connection
flood, 50 byte-a-second requests, a client that never reads its Fetch responses,
20,000 pipelined requests, producers vanishing mid-transaction, members vanishing
mid-rebalance. Printed per phase: ack and end-to-end p50/p99 and their ratio to the
quiet run, records lost, the broker's RSS peak against the budget, and log lines of
one kind less than a second apart. Target: p99 within 2x of quiet, RSS under budget,
no log bursts. Results also go to perf/out/hostile.json.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
sys.path.insert(0, str(ROOT / "perf"))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from hostile import (ConnectionFlood, NeverReader, Pipeliner, Quitters, RssSampler,  # noqa: E402
                     SlowFrames, Steady, broker_log_bursts)
from proc_util import free_port, start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
SECONDS_EACH = float(os.environ.get("SECONDS_EACH", "20"))
RATE = int(os.environ.get("RATE", "200"))
BUDGET = 128 << 20


class Quiet:
    """No hostile client at all."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def found(self) -> dict: return {}


def create_topics(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic("bulk", 1), NewTopic("txn-out", 1), NewTopic("work", 2)]
    for f in admin.create_topics(topics).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(2000):
        p.produce("bulk", value=b"%d" % i * 2000, partition=0)
        p.poll(0)
    p.flush(60)


def phase(name: str, bootstrap: str, pid: int, log: Path, hostile) -> dict:
    topic = "steady-" + name.replace(" ", "-")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1)]).values():
        f.result(30)
    steady = Steady(bootstrap, topic, rate=RATE)
    steady.start()
    time.sleep(1.0)
    log_from = log.stat().st_size
    rss = RssSampler(pid).start()
    hostile.start()
    time.sleep(SECONDS_EACH)
    steady.stop()
    hostile.stop()
    peak = rss.stop()
    with open(log, errors="replace") as f:
        f.seek(log_from)
        bursts = broker_log_bursts(f.read())
    good = steady.found()
    return {"phase": name, "ack_ms": good["ack_ms"], "e2e_ms": good["e2e_ms"],
            "acked": good["acked"], "lost": good["lost"], "duplicates": good["duplicates"],
            "errors": good["errors"], "rss_peak_mib": round(peak / 2**20, 1),
            "log_bursts": bursts, "hostile": hostile.found()}


def ratio(value, quiet) -> str:
    return "-" if not value or not quiet else f"{value / quiet:.2f}"


def report(rows: list[dict]) -> None:
    quiet = rows[0]
    print(f"\nbudget {BUDGET >> 20} MiB, {RATE} rec/s of 1 KiB, {SECONDS_EACH:.0f} s each")
    print(f"{'phase':<22} {'ack p50/p99 ms':>16} {'x quiet':>8} {'e2e p50/p99 ms':>16} {'x quiet':>8}"
          f" {'lost':>5} {'RSS MiB':>8} {'bursts':>6}")
    for r in rows:
        a, e = r["ack_ms"], r["e2e_ms"]
        print(f"{r['phase']:<22} {a['p50']:>7}/{a['p99']:<8} {ratio(a['p99'], quiet['ack_ms']['p99']):>8}"
              f" {e['p50']:>7}/{e['p99']:<8} {ratio(e['p99'], quiet['e2e_ms']['p99']):>8}"
              f" {r['lost']:>5} {r['rss_peak_mib']:>8} {len(r['log_bursts']):>6}")
    for r in rows[1:]:
        print(f"  {r['phase']}: {r['hostile']}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-hostile-"))
    port, admin = free_port(), free_port()
    proc = start_sluice(BIN, tmp / "data", port, admin, "--flush", "always",
                        "--memory-budget", str(BUDGET), "--max-connections", "40",
                        "--request-read-timeout-ms", "3000", "--idle-connection-timeout-ms", "4000")
    bootstrap = f"127.0.0.1:{port}"
    try:
        create_topics(bootstrap)
        phases = [("quiet", Quiet()),
                  ("connection flood", ConnectionFlood(port, 300)),
                  ("byte-a-second x50", SlowFrames(port, 50, interval=0.5)),
                  ("never reads", NeverReader(port, "bulk", 1)),
                  ("20k pipelined", Pipeliner(port, 20_000)),
                  ("vanish mid-txn", Quitters("txn", bootstrap, "txn-out", every=1.0)),
                  ("vanish mid-rebalance", Quitters("group", bootstrap, "work", every=1.0)),
                  ("quiet again", Quiet())]
        rows = []
        for name, hostile in phases:
            rows.append(phase(name, bootstrap, proc.pid, tmp / "broker.log", hostile))
            print(f"{name}: {rows[-1]}", flush=True)
        report(rows)
        out = ROOT / "perf" / "out"
        out.mkdir(exist_ok=True)
        (out / "hostile.json").write_text(json.dumps(rows, indent=1))
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
