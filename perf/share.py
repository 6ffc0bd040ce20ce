#!/usr/bin/env python3
"""Share groups (KIP-932) against the classic consumer group, same broker, same run.

    .venv/bin/python perf/share.py                       # flush=always, 4 layouts
    RECORDS=20000 LAYOUTS=4x1,16x8 .venv/bin/python perf/share.py
    RABBITMQ=0 .venv/bin/python perf/share.py             # without the RabbitMQ peer
    OUTSTANDING=1000000 .venv/bin/python perf/share.py    # only: broker RSS, 1 M outstanding
    SHARDS=1 PREFIX="nice -n -10" ...                      # broker shards; command before it

One broker (SHARDS shards, default 2; FLUSH policy) on 127.0.0.1. For each layout CxP (C consumers, P
partitions) a fresh topic gets RECORDS 1 KiB records, then:

1. classic: C confluent-kafka `Consumer`s in one consumer group (subscribe) read them
   all, committing offsets synchronously after every poll batch (the classic "ack");
2. share: C `ShareConsumer`s in one share group (explicit mode) read them all,
   acknowledging every record ACCEPT and `commit_sync` after every poll batch (each
   ShareAcknowledge is answered once its state is fdatasync'd).

3. rabbitmq (when `rabbitmq-server` and `pika` are installed, RABBITMQ=1 default): the
   same RECORDS x 1 KiB in P quorum queues (one per partition; 4x1 is one queue),
   published with publisher confirms; C consumer processes each consume every queue
   with manual acks (`basic_ack` per record) and a prefetch of 500/P per queue (500 in
   flight per consumer, like max.poll.records). RabbitMQ runs as a child process on
   127.0.0.1 with its own temp node, mnesia, logs and epmd port, and is stopped after.

Each consumer is its own process (no GIL between them). Reported per layout: records/s
of each (first record to last, over all consumers), the ratios share/classic and
share/RabbitMQ, the commit_sync (ack) latency p50/p99 seen by the share consumers; per
run the broker's own ShareAcknowledge latency p50/p99 (its request histogram at
/metrics: decode to encoded response, the fdatasync included), the segment and journal
fdatasync p99s, and the broker's RSS. Results go to stdout and perf/out/share.json.

OUTSTANDING=N runs only the memory check: N records (512 B) in one topic of 8
partitions, a share group whose consumers acquire records and never acknowledge them
(and the rest stay unconsumed behind it), broker RSS sampled before, during and after,
next to `--memory-budget` (MEMORY_BUDGET bytes, default 536870912: the broker default).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
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
RECORDS = int(os.environ.get("RECORDS", "10000"))
LAYOUTS = [tuple(int(x) for x in l.split("x"))
           for l in os.environ.get("LAYOUTS", "4x1,4x8,16x1,16x8").split(",")]
RABBITMQ = os.environ.get("RABBITMQ", "1") == "1"
OUTSTANDING = int(os.environ.get("OUTSTANDING", "0"))
MEMORY_BUDGET = os.environ.get("MEMORY_BUDGET", "536870912")  # bytes; the broker default
SHARDS = int(os.environ.get("SHARDS", "2"))
VALUE = b"x" * 1024
TIMEOUT_S = 300



def run_workers(target, args: tuple, consumers: int) -> list:
    """`consumers` processes of `target(*args, done, out)`; what each put on `out`
    (records, first and last record time, and what else the worker reports)."""
    done, out = mp.Value("l", 0), mp.Queue()
    procs = [mp.Process(target=target, args=(*args, done, out)) for _ in range(consumers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=TIMEOUT_S + 60) for _ in procs]
    for p in procs:
        p.join(30)
    return results


def throughput(results: list) -> tuple[int, int]:
    """(records, records/s from the first record to the last, over all workers)."""
    n = sum(r[0] for r in results)
    first = min(r[1] for r in results if r[1])
    last = max(r[2] for r in results if r[2])
    return n, round(n / max(last - first, 1e-6))

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
    target = share_worker if kind == "share" else classic_worker
    results = run_workers(target, (bootstrap, topic, group), consumers)
    n, per_s = throughput(results)
    acks = sorted(a for r in results for a in r[3])
    pick = lambda q: round(acks[min(len(acks) - 1, int(q * len(acks)))] * 1e3, 2) if acks else None  # noqa: E731
    return {"records": n, "records_per_s": per_s,
            "ack_p50_ms": pick(0.5), "ack_p99_ms": pick(0.99),
            "consumers_with_records": sum(1 for r in results if r[0] > 0)}


def metric_ms(admin_port: int, sample: str) -> float | None:
    """One sample of /metrics (seconds), in ms; `sample` is the line up to its value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return round(float(line.split()[-1]) * 1e3, 3)
    return None


def broker_latencies(admin_port: int) -> dict:
    """The broker's own view: ShareAcknowledge, next to two requests that never wait for
    the share-state journal (the heartbeat) or wait for it only when they acquire
    (ShareFetch, long-polled up to max_wait_ms), and the fdatasyncs; p50/p99 in ms."""
    out = {}
    for name, metric in (("share_ack", 'sluice_request_latency_seconds{api="ShareAcknowledge",'),
                         ("share_heartbeat", 'sluice_request_latency_seconds{api="ShareGroupHeartbeat",'),
                         ("share_fetch", 'sluice_request_latency_seconds{api="ShareFetch",'),
                         ("segment_fsync", "sluice_fsync_latency_seconds{"),
                         ("journal_fsync", "sluice_journal_fsync_latency_seconds{")):
        for q, label in (("0.5", "p50"), ("0.99", "p99")):
            out[f"{name}_{label}_ms"] = metric_ms(admin_port, f'{metric}quantile="{q}"}}')
    return out


# --- RabbitMQ: quorum queues, publisher confirms, manual acks ------------------------------

RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's /usr/sbin one su's to rabbitmq


class Rabbit:
    """rabbitmq-server as a child process: its own node name, mnesia, logs, config and epmd
    port, every listener on 127.0.0.1; `stop()` ends it and its epmd."""

    def __init__(self, base: Path, start_timeout_s: float = 120):
        base.mkdir(parents=True)
        self.port, dist, self.epmd = free_port(), free_port(), free_port()
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")
        (base / "enabled_plugins").write_text("[].\n")
        self.env = dict(os.environ, HOME=str(base), RABBITMQ_NODENAME=f"sluiceperf{self.port}@localhost",
                        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
                        RABBITMQ_MNESIA_BASE=str(base / "mnesia"), RABBITMQ_LOG_BASE=str(base / "log"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
                        RABBITMQ_DIST_PORT=str(dist), ERL_EPMD_PORT=str(self.epmd),
                        ERL_EPMD_ADDRESS="127.0.0.1", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
        self.log = base / "rabbitmq.out"
        self.proc = subprocess.Popen([RABBITMQ_SERVER], env=self.env, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + start_timeout_s
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"rabbitmq-server did not start; see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        subprocess.run(["epmd", "-kill"], env=self.env, capture_output=True, timeout=10)


def port_open(port: int) -> bool:
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def rabbit_fill(port: int, queues: list[str]) -> None:
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    for q in queues:
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    props = pika.BasicProperties(delivery_mode=2)
    for i in range(RECORDS):
        ch.basic_publish("", queues[i % len(queues)], VALUE, props, mandatory=True)
    conn.close()


def rabbit_worker(port, queues, done, out):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=max(1, 500 // len(queues)))
    stats = {"n": 0, "first": None, "last": None}

    def on_message(ch, method, _props, _body):
        stats["first"] = stats["first"] or time.time()
        ch.basic_ack(method.delivery_tag)
        stats["n"] += 1
        stats["last"] = time.time()
        with done.get_lock():
            done.value += 1

    for q in queues:
        ch.basic_consume(q, on_message)
    deadline = time.monotonic() + TIMEOUT_S
    while done.value < RECORDS and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.2)
    conn.close()
    out.put((stats["n"], stats["first"], stats["last"], []))


def rabbit_run(port: int, name: str, consumers: int, partitions: int) -> dict:
    queues = [f"perf-{name}-{p}" for p in range(partitions)]
    rabbit_fill(port, queues)
    results = run_workers(rabbit_worker, (port, queues), consumers)
    n, per_s = throughput(results)
    return {"records": n, "records_per_s": per_s, "queues": partitions,
            "consumers_with_records": sum(1 for r in results if r[0] > 0)}


# --- OUTSTANDING: broker RSS with N records outstanding behind a share group --------------

def hold_worker(bootstrap, topic, group, seconds, out):
    """A share consumer that acquires records and never acknowledges them."""
    config = {"bootstrap.servers": bootstrap, "group.id": group,
              "share.acknowledgement.mode": "explicit", "max.poll.records": 2000}
    if os.environ.get("HOLD_FETCH_MAX_BYTES"):  # librdkafka's default is 52428800
        config["fetch.max.bytes"] = int(os.environ["HOLD_FETCH_MAX_BYTES"])
    c = ShareConsumer(config)
    c.subscribe([topic])
    held, deadline = 0, time.monotonic() + seconds
    while not held and time.monotonic() < deadline:  # explicit mode: one poll, then hold
        held = sum(1 for m in c.poll(0.5) if m.error() is None)
    out.put(held)
    time.sleep(max(0.0, deadline - time.monotonic()))
    os._exit(0)  # no close: nothing is released or acknowledged on the way out


def outstanding(bootstrap: str, pid: int) -> dict:
    global VALUE, RECORDS
    VALUE, RECORDS = b"x" * 512, OUTSTANDING
    rss = lambda: round(rss_bytes(pid) / 2**20, 1)  # noqa: E731
    topic, group, samples = "perf-outstanding", "share-outstanding", {"start": rss()}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.GROUP, group, incremental_configs=[ConfigEntry(
        "share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([res]).values():
        f.result(30)
    started = time.monotonic()
    fill(bootstrap, topic, 8)
    samples["after_produce"] = rss()
    fill_s = round(time.monotonic() - started, 1)
    out = mp.Queue()
    procs = [mp.Process(target=hold_worker, args=(bootstrap, topic, group, 15, out)) for _ in range(4)]
    for p in procs:
        p.start()
    peak = 0.0
    while any(p.is_alive() for p in procs):
        peak = max(peak, rss())
        time.sleep(0.5)
    held = sum(out.get(timeout=30) for _ in procs)
    samples["peak_while_acquiring"] = peak
    samples["after_consumers_died"] = rss()
    return {"outstanding_records": OUTSTANDING, "record_bytes": len(VALUE), "partitions": 8,
            "acquired_never_acknowledged": held, "memory_budget": MEMORY_BUDGET,
            "produce_s": fill_s, "broker_rss_mb": samples}


def layout_row(bootstrap: str, rabbit, consumers: int, partitions: int) -> dict:
    row = {"consumers": consumers, "partitions": partitions}
    for kind in ("classic", "share"):
        topic = f"perf-{kind}-{consumers}x{partitions}"
        fill(bootstrap, topic, partitions)
        row[kind] = run(kind, bootstrap, topic, consumers)
    row["share_over_classic"] = round(
        row["share"]["records_per_s"] / max(row["classic"]["records_per_s"], 1), 3)
    if rabbit is not None:
        row["rabbitmq"] = rabbit_run(rabbit.port, f"{consumers}x{partitions}", consumers, partitions)
        row["share_over_rabbitmq"] = round(
            row["share"]["records_per_s"] / max(row["rabbitmq"]["records_per_s"], 1), 2)
    return row


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sluice-share-perf-"))
    port, admin = free_port(), free_port()
    args = ["--flush", FLUSH] + (["--memory-budget", MEMORY_BUDGET] if OUTSTANDING else [])
    broker = start_sluice(BIN, tmp / "data", port, admin, *args, shards=SHARDS,
                          prefix=tuple(os.environ.get("PREFIX", "").split()))
    bootstrap = f"127.0.0.1:{port}"
    rabbit = None
    try:
        if OUTSTANDING:
            summary = outstanding(bootstrap, broker.pid)
            name = "share-outstanding.json"
        else:
            rabbit = Rabbit(tmp / "rabbitmq") if RABBITMQ else None
            rows = []
            for consumers, partitions in LAYOUTS:
                rows.append(layout_row(bootstrap, rabbit, consumers, partitions))
                print(json.dumps(rows[-1]), flush=True)
            summary = {"flush": FLUSH, "records_per_layout": RECORDS, "record_bytes": len(VALUE),
                       **broker_latencies(admin),
                       "broker_rss_mb": round(rss_bytes(broker.pid) / 2**20, 1), "layouts": rows}
            name = "share.json"
        out = ROOT / "perf" / "out"
        out.mkdir(exist_ok=True)
        (out / name).write_text(json.dumps(summary, indent=2))
        print(json.dumps({k: v for k, v in summary.items() if k != "layouts"}))
    finally:
        if rabbit is not None:
            rabbit.stop()
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
