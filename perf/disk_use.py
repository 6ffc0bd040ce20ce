#!/usr/bin/env python3
"""Disk a partition costs: N partitions holding one record each, measured with du while
the broker runs (preallocated space counts: it is allocated on disk).

    .venv/bin/python perf/disk_use.py [--bin target/release/sluice] [--partitions 1000]

Prints the data directory's allocated bytes (du), its apparent size, and both per
partition. The broker runs with the default flush policy; the record goes with acks=all.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def du_bytes(path: Path, apparent: bool) -> int:
    args = ["du", "-s", "--block-size=1"] + (["--apparent-size"] if apparent else []) + [str(path)]
    return int(subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/sluice")
    ap.add_argument("--partitions", type=int, default=1000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-disk-use-"))
    port, admin_port = free_port(), free_port()
    log = open(work / "broker.log", "wb")
    broker = subprocess.Popen(
        [args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data"),
         "--shards", "2", "--admin-addr", f"127.0.0.1:{admin_port}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        bs = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if broker.poll() is not None:
                raise SystemExit(f"broker exited; see {work / 'broker.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        admin = AdminClient({"bootstrap.servers": bs})
        for f in admin.create_topics([NewTopic("one-each", args.partitions, 1)]).values():
            f.result(60)
        empty_alloc, empty_apparent = du_bytes(work / "data", False), du_bytes(work / "data", True)
        p = Producer({"bootstrap.servers": bs, "acks": "all", "linger.ms": 50})
        for i in range(args.partitions):
            p.produce("one-each", value=b"x", partition=i)
        assert p.flush(60) == 0, "records not acknowledged"
        time.sleep(2)  # the next checkpoint and index writes land
        alloc, apparent = du_bytes(work / "data", False), du_bytes(work / "data", True)
        n = args.partitions
        print(f"partitions={n} created_empty_du_bytes={empty_alloc} created_empty_apparent_bytes={empty_apparent}")
        print(f"one_record_each_du_bytes={alloc} one_record_each_apparent_bytes={apparent}")
        print(f"per_partition_du_bytes={alloc // n} per_partition_apparent_bytes={apparent // n}")
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
