#!/usr/bin/env python3
"""Fetch throughput and broker CPU per GB: zero copy (sendfile) against the copy path.

    .venv/bin/python perf/fetch_zero_copy.py            # 1 GiB stored, 4 consumers read it all
    DATA_GIB=0.5 CONSUMERS=2 .venv/bin/python perf/fetch_zero_copy.py

One data set is produced once (DATA_GIB over 4 partitions, 16 KiB records,
uncompressed) with confluent-kafka, then read into the page cache. Then, for
each mode — `--fetch-zero-copy true`, then `false` — the broker is restarted
on the same data and CONSUMERS processes each fetch every partition from
offset 0 to the end with raw Fetch v4 requests (no record parsing beyond the
batch headers, so the client is not the bottleneck), CONSUMERS × DATA_GIB in
all. Reported per mode: bytes sent, wall time, GB/s, broker CPU seconds
(utime + stime from /proc/PID/stat) and CPU-s per GB. Then a shorter read
under `strace -c -f` shows which syscalls carry the bytes in each mode.

Every network connection is to 127.0.0.1; the broker and consumers stop by
themselves. Results go to stdout and perf/out/fetch_zero_copy.json.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "clients"))
import wire  # noqa: E402
from conftest import free_ports  # noqa: E402
from proc_util import cpu_seconds, start_sluice  # noqa: E402

BIN = os.environ.get("SLUICE_BIN", str(ROOT / "target" / "release" / "sluice"))
DATA_GIB = float(os.environ.get("DATA_GIB", "1"))
CONSUMERS = int(os.environ.get("CONSUMERS", "4"))
PARTITIONS = 4
RECORD = 16 * 1024
TOPIC = "zc"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start(data: Path, port: int, admin: int, zero_copy: bool) -> subprocess.Popen:
    return start_sluice(BIN, data, port, admin, "--flush", "never",
                        "--default-partitions", str(PARTITIONS),
                        "--fetch-zero-copy", str(zero_copy).lower())


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def produce(port: int) -> int:
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "linger.ms": 20,
                  "batch.size": 1_000_000, "compression.type": "none", "acks": "1",
                  "queue.buffering.max.kbytes": 1_048_576})
    value = os.urandom(RECORD)
    total = int(DATA_GIB * 2**30) // RECORD
    for i in range(total):
        while True:
            try:
                p.produce(TOPIC, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    return total


def fetch_request(cid: int, offsets: dict[int, int]) -> bytes:
    return wire.fetch_v4_request(cid, TOPIC, offsets, max_wait_ms=0,
                                 partition_max_bytes=8 * 2**20, max_bytes=32 * 2**20)


def next_offsets(data: memoryview, offsets: dict[int, int]) -> int:
    """Advance `offsets` past the whole batches in a Fetch v4 response; bytes of records."""
    pos = 8
    (ntopics,) = struct.unpack_from(">i", data, pos); pos += 4
    got = 0
    for _ in range(ntopics):
        (name_len,) = struct.unpack_from(">h", data, pos); pos += 2 + name_len
        (nparts,) = struct.unpack_from(">i", data, pos); pos += 4
        for _ in range(nparts):
            part, error = struct.unpack_from(">ih", data, pos); pos += 22
            assert error == 0, f"fetch error {error} on partition {part}"
            (naborted,) = struct.unpack_from(">i", data, pos); pos += 4 + max(naborted, 0) * 16
            (size,) = struct.unpack_from(">i", data, pos); pos += 4
            at, end = pos, pos + max(size, 0)
            while at + 61 <= end:
                base, blen = struct.unpack_from(">qi", data, at)
                if at + 12 + blen > end:
                    break
                (delta,) = struct.unpack_from(">i", data, at + 23)
                offsets[part] = base + delta + 1
                at += 12 + blen
            got += max(size, 0)
            pos = end
    return got


def consume(port: int, ends: dict[int, int], out: mp.Queue) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 2**20)
    offsets = {p: 0 for p in ends}
    buf = bytearray(64 * 2**20)
    view = memoryview(buf)
    total, cid = 0, 0
    while any(offsets[p] < ends[p] for p in ends):
        cid += 1
        sock.sendall(fetch_request(cid, {p: o for p, o in offsets.items() if o < ends[p]}))
        head = wire.recv_exact(sock, 4)
        (size,) = struct.unpack(">i", head)
        got = 0
        while got < size:
            n = sock.recv_into(view[got:size])
            assert n, "broker closed the connection"
            got += n
        total += next_offsets(view[:size], offsets)
    sock.close()
    out.put(total)


def ends_of(port: int) -> dict[int, int]:
    """High watermark of each partition, from an empty-budget fetch."""
    sock = wire.connect(port)
    sock.sendall(wire.fetch_v4_request(0, TOPIC, {p: 0 for p in range(PARTITIONS)}, max_wait_ms=0,
                                       partition_max_bytes=0, max_bytes=1))
    data = wire.read_frame(sock)
    sock.close()
    pos, ends = 8 + 4, {}
    (name_len,) = struct.unpack_from(">h", data, pos); pos += 2 + name_len
    (nparts,) = struct.unpack_from(">i", data, pos); pos += 4
    for _ in range(nparts):
        part, _err, hwm = struct.unpack_from(">ihq", data, pos); pos += 22
        (naborted,) = struct.unpack_from(">i", data, pos); pos += 4 + max(naborted, 0) * 16
        (size,) = struct.unpack_from(">i", data, pos); pos += 4 + max(size, 0)
        ends[part] = hwm
    return ends


def run_consumers(port: int, ends: dict[int, int], count: int) -> tuple[int, float]:
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=consume, args=(port, ends, q)) for _ in range(count)]
    began = time.monotonic()
    for p in procs:
        p.start()
    total = sum(q.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(60)
    return total, time.monotonic() - began


def strace_top(pid: int, port: int, ends: dict[int, int]) -> list[str]:
    """Syscalls of the broker during one consumer's read of everything."""
    out = Path(tempfile.mktemp(prefix="strace-"))
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
                              stderr=subprocess.DEVNULL)
    time.sleep(1)
    run_consumers(port, ends, 1)
    tracer.terminate()
    tracer.wait(30)
    lines = out.read_text().splitlines()
    out.unlink()
    return [line for line in lines[:12]]


def iperf3_sendfile(port: int) -> dict:
    """The machine's own cost of sending over loopback: iperf3 -Z (sendfile), CONSUMERS
    streams, sender CPU from its getrusage (iperf3's cpu_utilization_percent)."""
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # no probe: a one-off (-1) server would take it for its client
    out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-Z", "-t", "5",
                          "-P", str(CONSUMERS), "-J"], capture_output=True, text=True, check=True)
    server.wait(10)
    end = json.loads(out.stdout)["end"]
    sent, cpu = end["sum_sent"], end["cpu_utilization_percent"]
    gb = sent["bytes"] / 1e9
    return {"gb_per_s": round(gb / sent["seconds"], 3),
            "sender_cpu_s_per_gb": round(cpu["host_total"] / 100 * sent["seconds"] / gb, 4),
            "receiver_cpu_s_per_gb": round(cpu["remote_total"] / 100 * sent["seconds"] / gb, 4)}


def main() -> None:
    for tool in ("strace", "iperf3"):
        if not shutil.which(tool):
            subprocess.run(["apt-get", "install", "-y", "-qq", tool], check=True)
    work = Path(tempfile.mkdtemp(prefix="sluice-zc-"))
    data = work / "data"
    port, admin = free_ports(2)
    results = {"data_gib": DATA_GIB, "consumers": CONSUMERS, "record_bytes": RECORD, "modes": {}}
    try:
        proc = start(data, port, admin, True)
        began = time.monotonic()
        records = produce(port)
        print(f"produced {records} records of {RECORD} B in {time.monotonic() - began:.1f} s")
        ends = ends_of(port)
        run_consumers(port, ends, 1)  # warm the page cache
        stop(proc)
        for zero_copy in (True, False):
            proc = start(data, port, admin, zero_copy)
            run_consumers(port, ends, 1)  # warm-up read in this process
            cpu0 = cpu_seconds(proc.pid)
            total, took = run_consumers(port, ends, CONSUMERS)
            cpu = cpu_seconds(proc.pid) - cpu0
            gb = total / 1e9
            mode = "zero_copy" if zero_copy else "copy"
            results["modes"][mode] = {
                "bytes": total, "seconds": round(took, 3), "gb_per_s": round(gb / took, 3),
                "broker_cpu_s": round(cpu, 2), "cpu_s_per_gb": round(cpu / gb, 4),
                "strace": strace_top(proc.pid, port, ends),
            }
            stop(proc)
            r = results["modes"][mode]
            print(f"{mode:>9}: {total / 2**30:.2f} GiB in {took:.2f} s = {r['gb_per_s']:.2f} GB/s; "
                  f"broker CPU {cpu:.2f} s = {r['cpu_s_per_gb']:.3f} CPU-s/GB")
            print("           strace -c -f (one consumer reading everything):")
            for line in r["strace"]:
                print("           " + line)
        zc, cp = results["modes"]["zero_copy"], results["modes"]["copy"]
        print(f"zero copy / copy: CPU per GB {zc['cpu_s_per_gb'] / cp['cpu_s_per_gb']:.2f}×, "
              f"throughput {zc['gb_per_s'] / cp['gb_per_s']:.2f}×")
        ip = results["iperf3_sendfile"] = iperf3_sendfile(free_ports(1)[0])
        print(f"   iperf3 -Z -P {CONSUMERS} (loopback, sendfile): {ip['gb_per_s']:.2f} GB/s, sender "
              f"{ip['sender_cpu_s_per_gb']:.3f} CPU-s/GB, receiver {ip['receiver_cpu_s_per_gb']:.3f}")
        print(f"zero copy / iperf3: CPU per GB {zc['cpu_s_per_gb'] / ip['sender_cpu_s_per_gb']:.2f}×, "
              f"throughput {zc['gb_per_s'] / ip['gb_per_s']:.2f}×")
        (ROOT / "perf" / "out").mkdir(exist_ok=True)
        (ROOT / "perf" / "out" / "fetch_zero_copy.json").write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
