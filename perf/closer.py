#!/usr/bin/env python3
"""Closer to the machine (issue 18): what the broker costs against what this machine's
kernel itself costs for the same work, all measured in one run.

    .venv/bin/python perf/closer.py                      # every section, ~5 min on 2 cores
    SECTIONS=produce,latency DURATION_S=20 .venv/bin/python perf/closer.py

Sections (SECTIONS, comma-separated; default all four):

- produce: broker CPU-s per GB produced — 1 KiB records, PRODUCE_PARTITIONS (8)
  partitions, 2 shards, acks=1, PRODUCE_RATE (100,000) msg/s, `--flush FLUSH`
  (interval:1000) — from utime + stime of the broker process (every thread, io-wq
  workers included) before and after, with the split by thread; against the floor: the
  kernel's cost of the same bytes at the same rate, received on loopback TCP (iperf3's
  receiver, measured from /proc) plus written through the page cache (fio, psync,
  buffered, 1 MiB writes into a preallocated file, usr_cpu + sys_cpu). Target: <= 1.3x.
- consume: broker CPU-s per GB consumed by 1, 4 and 16 tailing consumers (CONSUMERS),
  each reading every partition from the end as the producer writes them
  (CONSUME_RATE, 10,000 msg/s), for 1 and 1,000 partitions (CONSUME_PARTITIONS), on
  CONSUME_SHARDS (1) shards; the producer-only CPU of the same run is subtracted.
  Target: <= 0.5 CPU-s/GB. Beside each figure, the floor: the kernel's own CPU for the
  same number of requests and responses, of the broker's mean wire sizes (TCP counters
  of the consumers' connections, `ss -ti`), at the same pace (perf/fetch_floor.c, built
  with `cc`: the request received, the response sent with sendfile).
- latency: the broker alone on core 0 (`--shards 1`, taskset), `sluice bench` on core
  1, one producer and one consumer, linger 0, flush=never, at LATENCY_RATES (10,000 and
  50,000 msg/s): end-to-end, produce-ack and the broker's own Produce p50/p99/p99.9,
  next to the floor: a 1 KiB TCP round trip at the same rate pinned the same way
  (sockperf under-load, every message answered; a Python echo if sockperf is missing).
  Targets at 10,000 msg/s: e2e p99 <= 3x the floor's p99, broker Produce p99 <= 1.5x.
- wide: throughput to 10 topics x 1,000 partitions against 10 x 10 on one broker
  (perf/partitions.py's comparison, WIDE_DURATION_S seconds each). Target: <= 20% loss.

Knobs: SLUICE_BIN, DURATION_S (8) and WARMUP_S (2) per load run, BENCH_DIR (where the
broker's data and fio's file go: target/bench-tmp, the repo's disk). Writes
perf/out/closer.json (or CLOSER_OUT) and prints the figures and the JSON.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proc_util import (cpu_seconds, free_port, metrics_text, sample,  # noqa: E402
                       start_sluice, thread_cpu)

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
ENV = os.environ.get
SECTIONS = ENV("SECTIONS", "produce,consume,latency,wide").split(",")
DURATION_S = float(ENV("DURATION_S", "8"))
WARMUP_S = float(ENV("WARMUP_S", "2"))
FLUSH = ENV("FLUSH", "interval:1000")
PRODUCE_RATE = int(ENV("PRODUCE_RATE", "100000"))
PRODUCE_PARTITIONS = int(ENV("PRODUCE_PARTITIONS", "8"))
CONSUME_RATE = int(ENV("CONSUME_RATE", "10000"))
CONSUMERS = [int(n) for n in ENV("CONSUMERS", "1,4,16").split(",")]
CONSUME_PARTITIONS = [int(n) for n in ENV("CONSUME_PARTITIONS", "1,1000").split(",")]
# One shard by default: with two, whether the producer's and each consumer's connection
# land on the partition's owner is the kernel's pick per run, and that alone moved the
# producer-only CPU (subtracted below) by half between runs.
CONSUME_SHARDS = int(ENV("CONSUME_SHARDS", "1"))
LATENCY_RATES = [int(n) for n in ENV("LATENCY_RATES", "10000,50000").split(",")]
LATENCY_PARTITIONS = int(ENV("LATENCY_PARTITIONS", "8"))
WIDE_DURATION_S = float(ENV("WIDE_DURATION_S", "8"))
BENCH_DIR = Path(ENV("BENCH_DIR", str(ROOT / "target" / "bench-tmp")))
RECORD = 1024
QUANTILES = {"p50": "0.5", "p99": "0.99", "p99_9": "0.999"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Broker:
    """A broker on fresh ports and a fresh data dir under `root`, stopped by `close`."""

    def __init__(self, root: Path, *args: str, shards: int = 2, prefix: tuple = ()):
        self.port, self.admin = free_port(), free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="closer-", dir=root))
        self.proc = start_sluice(BIN, self.dir / "data", self.port, self.admin, *args,
                                 shards=shards, prefix=prefix)
        self.bootstrap = f"127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def bench(bootstrap: str, *args: str, prefix: tuple = ()) -> dict:
    """One `sluice bench` run (1 KiB, acks=1, DURATION_S after WARMUP_S) with `args`."""
    cmd = [*prefix, BIN, "bench", "--brokers", bootstrap, "--message-bytes", str(RECORD),
           "--acks", "1", "--duration-s", str(DURATION_S), "--warmup-s", str(WARMUP_S),
           "--drain-timeout-s", "10", "--json", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION_S + 180)
    if out.returncode != 0:
        raise RuntimeError(f"sluice bench failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def per_gb(cpu_s: float, nbytes: float) -> float:
    return round(cpu_s / max(nbytes / 1e9, 1e-12), 3)


def thread_split(before: dict, after: dict) -> dict:
    """CPU-s by thread between two `thread_cpu` readings, io-wq workers (iou-wrk-*) summed;
    user and system apart; threads that spent nothing left out. Threads that exited in
    between are missing here (the process total has them)."""
    kinds: dict[str, list[float]] = {}
    for tid, (name, user, system) in after.items():
        _, user0, system0 = before.get(tid, (name, 0.0, 0.0))
        kind = "io-wq" if name.startswith("iou-wrk") else name
        k = kinds.setdefault(kind, [0.0, 0.0])
        k[0] += user - user0
        k[1] += system - system0
    return {k: {"user_s": round(u, 2), "system_s": round(s, 2)}
            for k, (u, s) in kinds.items() if u + s > 0}


# --- produce: the broker against loopback receive + buffered write ------------------------

def broker_produce(root: Path) -> dict:
    broker = Broker(root, "--flush", FLUSH)
    try:
        threads0, cpu0 = thread_cpu(broker.proc.pid), broker.cpu()
        r = bench(broker.bootstrap, "--partitions", str(PRODUCE_PARTITIONS),
                  "--producers", "1", "--consumers", "0", "--rate", str(PRODUCE_RATE))
        cpu, threads = broker.cpu() - cpu0, thread_split(threads0, thread_cpu(broker.proc.pid))
    finally:
        broker.close()
    nbytes = r["produced_total"] * RECORD
    return {"msgs_per_sec": r["produce_msgs_per_sec"], "bytes": nbytes,
            "cpu_s": round(cpu, 2), "cpu_s_per_gb": per_gb(cpu, nbytes), "threads": threads}


def iperf3_receive(nbytes: int) -> dict:
    """iperf3's receiver (server) CPU from /proc while the client sends `nbytes` at
    PRODUCE_RATE x 1 KiB per second."""
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)  # no probe: iperf3 would take a probe for a client
        cpu0 = cpu_seconds(server.pid)
        bits = PRODUCE_RATE * RECORD * 8
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-b", str(bits),
                              "-n", str(nbytes), "-J"], capture_output=True, text=True,
                             check=True, timeout=600)
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(10)
    got = json.loads(out.stdout)["end"]["sum_received"]["bytes"]
    return {"bytes": got, "cpu_s": round(cpu, 2), "cpu_s_per_gb": per_gb(cpu, got)}


def fio_write(root: Path, nbytes: int) -> dict:
    """fio: `nbytes` in 1 MiB buffered writes into a preallocated file at the same rate,
    after a warm-up write (this VM's balloon slows the first GiB after an idle spell)."""
    path = root / "fio.dat"
    base = ["fio", f"--filename={path}", "--rw=write", "--bs=1M", "--ioengine=psync"]
    subprocess.run([*base, "--name=warm", "--size=512M", "--output-format=terse"],
                   capture_output=True, check=False)
    path.unlink(missing_ok=True)
    out = subprocess.run([*base, "--name=floor", f"--size={nbytes}", "--fallocate=native",
                          f"--rate={PRODUCE_RATE * RECORD}", "--output-format=json"],
                         capture_output=True, text=True, check=True)
    path.unlink(missing_ok=True)
    job = json.loads(out.stdout)["jobs"][0]
    user, system = (job[k] / 100 * job["job_runtime"] / 1000 for k in ("usr_cpu", "sys_cpu"))
    return {"bytes": job["write"]["io_bytes"], "user_s": round(user, 2),
            "system_s": round(system, 2), "cpu_s": round(user + system, 2),
            "cpu_s_per_gb": per_gb(user + system, job["write"]["io_bytes"])}


def produce_section(root: Path) -> dict:
    log(f"produce: {PRODUCE_RATE} msg/s to {PRODUCE_PARTITIONS} partitions, flush {FLUSH}")
    broker = broker_produce(root)
    log("produce: the floor (iperf3 receiver + fio buffered write)")
    recv, write = iperf3_receive(broker["bytes"]), fio_write(root, broker["bytes"])
    floor = round(recv["cpu_s_per_gb"] + write["cpu_s_per_gb"], 3)
    return {"broker": broker, "loopback_receive": recv, "buffered_write": write,
            "floor_cpu_s_per_gb": floor,
            "ratio_to_floor": round(broker["cpu_s_per_gb"] / max(floor, 1e-9), 2),
            "target_ratio": 1.3}


# --- consume: tailing consumers ------------------------------------------------------------

def tail(bootstrap: str, topic: str, partitions: int, ready, stop, out) -> None:
    """One consumer of its own: every partition from its end, until `stop`; puts the bytes
    of the record values it read."""
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tail-{os.getpid()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 100,
                  "fetch.min.bytes": 1, "enable.partition.eof": False})
    c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
    settle = time.monotonic() + 1.5  # the end offsets are looked up, fetching begins
    while time.monotonic() < settle:
        c.poll(0.05)
    ready.put(1)
    total = 0
    while not stop.is_set():
        for m in c.consume(1000, 0.05):
            if m.error() is None:
                total += len(m.value() or b"")
    c.close()
    out.put(total)


def tail_run(broker: Broker, topic: str, partitions: int, consumers: int) -> dict:
    ctx = mp.get_context("fork")
    ready, out, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=tail, args=(broker.bootstrap, topic, partitions, ready,
                                            stop, out)) for _ in range(consumers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    cpu0, fetches0, t0 = broker.cpu(), fetch_count(broker), time.monotonic()
    wire0 = wire_bytes(broker.port)
    r = bench(broker.bootstrap, "--topic", topic, "--partitions", str(partitions),
              "--producers", "1", "--consumers", "0", "--rate", str(CONSUME_RATE))
    time.sleep(1)  # the consumers read the last appends
    cpu, seconds = broker.cpu() - cpu0, time.monotonic() - t0
    fetches = fetch_count(broker) - fetches0
    wire = fetch_wire(wire0, wire_bytes(broker.port))
    stop.set()
    consumed = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    return {"consumers": consumers, "cpu_s": round(cpu, 2), "consumed_bytes": consumed,
            "produced_bytes": r["produced_total"] * RECORD, "fetches": int(fetches),
            "seconds": round(seconds, 2), **wire}


def wire_bytes(port: int) -> dict[str, tuple[int, int]]:
    """Bytes (sent, received) by the broker on each of its client connections, by the
    client's address, from the kernel's TCP counters (`ss -ti`)."""
    out = subprocess.run(["ss", "-tinH", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    conns = {}
    for head, info in zip(out[::2], out[1::2]):
        nums = dict(re.findall(r"(bytes_sent|bytes_received):(\d+)", info))
        conns[head.split()[-1]] = (int(nums.get("bytes_sent", 0)),
                                   int(nums.get("bytes_received", 0)))
    return conns


def fetch_wire(before: dict, after: dict) -> dict:
    """What the broker sent and received in between on the connections that mostly sent
    (the consumers': fetch responses out, fetch requests in; the producer's receive)."""
    sent = received = 0
    for peer, (s1, r1) in after.items():
        s0, r0 = before.get(peer, (0, 0))
        if s1 - s0 > r1 - r0:
            sent, received = sent + s1 - s0, received + r1 - r0
    return {"fetch_wire_sent": sent, "fetch_wire_received": received}


def fetch_count(broker: Broker) -> float:
    text = metrics_text(broker.admin)
    return sample(text, 'sluice_request_latency_seconds_count{api="Fetch"}') or 0.0


# --- consume floor: the kernel's own cost of the same responses ----------------------------

def fetch_floor(root: Path, responses: int, request_bytes: int, response_bytes: int,
                seconds: float, consumed: int) -> dict:
    """CPU of perf/fetch_floor.c (a request of `request_bytes` in, `response_bytes` out
    by sendfile from a cached file: the broker's mean wire sizes) answering `responses`
    requests paced over `seconds` on one connection: a wake-up, a receive and a zero-copy
    send per response, the least a broker's live-tail response can cost this kernel. Per
    GB of `consumed` record bytes, as the broker's figure."""
    exe, data = floor_tools(root)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        # The server accepts on this listener: listening before it starts.
        fd = listener.fileno()
        server = subprocess.Popen([str(exe), str(data), str(fd)], pass_fds=[fd])
        sock = socket.create_connection(listener.getsockname(), timeout=30)
    try:
        buf, request = memoryview(bytearray(max(response_bytes, 1))), max(request_bytes, 8)
        cpu0, start, step = cpu_seconds(server.pid), time.monotonic(), seconds / responses
        for i in range(responses):
            if (delay := start + i * step - time.monotonic()) > 0:
                time.sleep(delay)
            sock.sendall(response_bytes.to_bytes(4, "big") + request.to_bytes(4, "big")
                         + bytes(request - 8))
            got = 0
            while got < response_bytes:
                got += sock.recv_into(buf[got:])
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        sock.close()
        server.kill()
        server.wait(10)
    return {"responses": responses, "request_bytes": request_bytes,
            "response_bytes": response_bytes, "cpu_s": round(cpu, 2),
            "cpu_s_per_gb": per_gb(cpu, consumed),
            "us_per_response": round(cpu / responses * 1e6, 1)}


@functools.cache
def floor_tools(root: Path) -> tuple[Path, Path]:
    """perf/fetch_floor.c built, and the 64 MiB file it sends from written (and left in
    the page cache), once a run."""
    exe, data = root / "fetch_floor", root / "floor.dat"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "perf" / "fetch_floor.c")],
                   check=True)
    data.write_bytes(os.urandom(1 << 20) * 64)
    return exe, data


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=120).values():
        f.result(180)


def consume_partitions(root: Path, partitions: int) -> list[dict]:
    broker = Broker(root, "--flush", FLUSH, shards=CONSUME_SHARDS)
    topic = f"tail-{partitions}"
    try:
        create_topic(broker.bootstrap, topic, partitions)
        runs = [tail_run(broker, topic, partitions, n) for n in [0, *CONSUMERS]]
    finally:
        broker.close()
    alone = runs[0]
    for run in runs[1:]:
        extra = run["cpu_s"] - alone["cpu_s"] * run["produced_bytes"] / max(alone["produced_bytes"], 1)
        run["consume_cpu_s"] = round(extra, 2)
        run["cpu_s_per_gb_consumed"] = per_gb(extra, run["consumed_bytes"])
        run["read_all"] = run["consumed_bytes"] >= 0.99 * run["consumers"] * run["produced_bytes"]
        if (n := run["fetches"]) > 0:
            run["us_per_response"] = round(extra / n * 1e6, 1)
            run["floor"] = fetch_floor(root, n, run["fetch_wire_received"] // n,
                                       run["fetch_wire_sent"] // n, run["seconds"],
                                       run["consumed_bytes"])
    alone["cpu_s_per_gb_produced"] = per_gb(alone["cpu_s"], alone["produced_bytes"])
    return runs


def consume_section(root: Path) -> dict:
    out = {"rate": CONSUME_RATE, "shards": CONSUME_SHARDS, "target_cpu_s_per_gb": 0.5}
    for partitions in CONSUME_PARTITIONS:
        log(f"consume: {partitions} partitions, {CONSUMERS} tailing consumers")
        out[f"partitions_{partitions}"] = consume_partitions(root, partitions)
    return out


# --- latency: pinned broker and generator, against a pinned TCP round trip -----------------

def sockperf_floor(rate: int) -> dict:
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", "0", "sockperf", "server", "-i", "127.0.0.1",
                               "-p", str(port), "--tcp"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["taskset", "-c", "1", "sockperf", "under-load", "-i", "127.0.0.1",
                              "-p", str(port), "--tcp", "-m", str(RECORD), "--mps", str(rate),
                              "-t", str(int(DURATION_S)), "--full-rtt", "--reply-every", "1"],
                             capture_output=True, text=True, timeout=DURATION_S + 60)
    finally:
        server.terminate()
        server.wait(10)
    pct = dict(re.findall(r"percentile (\d+\.\d+) =\s+([\d.]+)", out.stdout + out.stderr))
    return {"tool": "sockperf under-load --full-rtt --reply-every 1",
            "p50": float(pct["50.000"]), "p99": float(pct["99.000"]),
            "p99_9": float(pct["99.900"])}


def echo_server(port: int) -> None:
    with socket.create_server(("127.0.0.1", port)) as s:
        conn, _ = s.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := conn.recv(65536):
            conn.sendall(data)


def python_floor(rate: int) -> dict:
    """Without sockperf: a 1 KiB echo on core 0, paced sends on core 1, each round trip
    timed from its intended send time (no coordinated omission)."""
    port = free_port()
    server = mp.get_context("fork").Process(target=echo_server, args=(port,))
    server.start()
    os.sched_setaffinity(server.pid, {0})
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        time.sleep(0.3)
        rtts = paced_echo(port, rate)
    finally:
        os.sched_setaffinity(0, mine)
        server.terminate()
    rtts.sort()
    q = lambda f: round(rtts[min(int(f * len(rtts)), len(rtts) - 1)], 1)  # noqa: E731
    return {"tool": "python echo", "p50": q(0.5), "p99": q(0.99), "p99_9": q(0.999)}


def paced_echo(port: int, rate: int) -> list[float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg, rtts, step = b"x" * RECORD, [], 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * DURATION_S)):
        due = start + i * step
        while time.perf_counter() < due:
            pass
        sock.sendall(msg)
        got = 0
        while got < RECORD:
            got += len(sock.recv(RECORD - got))
        rtts.append((time.perf_counter() - due) * 1e6)
    sock.close()
    return rtts


def broker_latency(root: Path, rate: int) -> dict:
    broker = Broker(root, "--flush", "never", shards=1, prefix=("taskset", "-c", "0"))
    try:
        r = bench(broker.bootstrap, "--partitions", str(LATENCY_PARTITIONS), "--producers", "1",
                  "--consumers", "1", "--rate", str(rate), "--linger-ms", "0",
                  prefix=("taskset", "-c", "1"))
        text = metrics_text(broker.admin)
    finally:
        broker.close()
    name = 'sluice_request_latency_seconds{api="Produce",quantile="%s"}'
    produce = {k: round(sample(text, name % q) * 1e6, 1) for k, q in QUANTILES.items()}
    pick = lambda h: {k: h[k] for k in QUANTILES}  # noqa: E731
    return {"msgs_per_sec": r["produce_msgs_per_sec"], "e2e_us": pick(r["e2e_latency_us"]),
            "produce_ack_us": pick(r["produce_latency_us"]), "broker_produce_us": produce}


def latency_section(root: Path) -> dict:
    out = {"targets": {"e2e_p99_over_floor": 3.0, "broker_produce_p99_over_floor": 1.5}}
    for rate in LATENCY_RATES:
        log(f"latency: {rate} msg/s, floor then broker")
        floor = sockperf_floor(rate) if shutil.which("sockperf") else python_floor(rate)
        run = broker_latency(root, rate)
        run["floor_rtt_us"] = floor
        run["e2e_p99_over_floor"] = round(run["e2e_us"]["p99"] / max(floor["p99"], 1e-9), 2)
        run["broker_produce_p99_over_floor"] = round(
            run["broker_produce_us"]["p99"] / max(floor["p99"], 1e-9), 2)
        out[f"rate_{rate}"] = run
    return out


# --- wide: 10,000 partitions against 100 ------------------------------------------------------

def wide_section(root: Path) -> dict:
    import partitions
    partitions.DURATION_S = WIDE_DURATION_S
    log(f"wide: {partitions.TOPICS} x {partitions.PARTITIONS} partitions against "
        f"{partitions.TOPICS} x {partitions.NARROW}")
    broker = Broker(root, "--flush", FLUSH)
    out = {"target_loss": 0.2}
    try:
        partitions.wide_over_narrow(broker.bootstrap, broker.admin, broker.proc.pid, out)
    finally:
        broker.close()
    out["loss"] = round(1 - out["wide_over_narrow"], 3)
    return out


def summary(r: dict) -> list[str]:
    lines = []
    if p := r.get("produce"):
        lines.append(f"produce CPU: broker {p['broker']['cpu_s_per_gb']} CPU-s/GB, floor "
                     f"{p['floor_cpu_s_per_gb']} (receive {p['loopback_receive']['cpu_s_per_gb']}"
                     f" + write {p['buffered_write']['cpu_s_per_gb']}): {p['ratio_to_floor']}x"
                     f" (target <= 1.3x); threads {p['broker']['threads']}")
    for key, runs in (r.get("consume") or {}).items():
        if key.startswith("partitions_"):
            figs = ", ".join(f"{x['consumers']}c {x['cpu_s_per_gb_consumed']}"
                             + (f" (floor {x['floor']['cpu_s_per_gb']}, {x['fetches']}"
                                f" responses)" if "floor" in x else "")
                             + ("" if x["read_all"] else " (fell behind)") for x in runs[1:])
            lines.append(f"live-tail consume, {key[11:]} partitions: CPU-s/GB consumed {figs}"
                         " (target <= 0.5)")
    for key, x in (r.get("latency") or {}).items():
        if key.startswith("rate_"):
            f = x["floor_rtt_us"]
            lines.append(f"latency at {key[5:]} msg/s (us, p50/p99/p99.9): e2e {fmt(x['e2e_us'])},"
                         f" broker Produce {fmt(x['broker_produce_us'])}, produce-ack "
                         f"{fmt(x['produce_ack_us'])}, floor {fmt(f)}; e2e p99 "
                         f"{x['e2e_p99_over_floor']}x (<= 3), broker p99 "
                         f"{x['broker_produce_p99_over_floor']}x (<= 1.5)")
    if w := r.get("wide"):
        lines.append(f"10,000 partitions: {w['wide']['msgs_per_sec']} msg/s against "
                     f"{w['narrow']['msgs_per_sec']} with 100: ratio {w['wide_over_narrow']} "
                     f"(loss {w['loss']}, target <= 0.2)")
    return lines


def fmt(q: dict) -> str:
    return "/".join(str(q[k]) for k in QUANTILES)


def main() -> None:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="closer-", dir=BENCH_DIR))
    sections = {"produce": produce_section, "consume": consume_section,
                "latency": latency_section, "wide": wide_section}
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
              "duration_s": DURATION_S, "warmup_s": WARMUP_S, "flush": FLUSH}
    started = time.monotonic()
    try:
        for name in SECTIONS:
            result[name] = sections[name](root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        result["wall_s"] = round(time.monotonic() - started, 1)
        out = Path(ENV("CLOSER_OUT", str(ROOT / "perf" / "out" / "closer.json")))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        print("\n".join(summary(result)))


if __name__ == "__main__":
    main()
